import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { keyString, type InstanceKey } from "../src/domain/instance.js";
import { HeartbeatStream, LeaseTable } from "../src/registry/leases.js";

// The lease table's expiry heap against a naive model: random renewals,
// TTL changes, streams binding and ending (grace), deletions and expiry
// sweeps at increasing times. Every sweep must return exactly the leases
// whose deadline or grace has passed, with the right reason, and nextDue
// must never be later than the earliest lease still due.

type Op =
  | { kind: "extend"; key: number; ttl: number; replace: boolean }
  | { kind: "bind"; key: number; stream: number }
  | { kind: "endStream"; stream: number; grace: number }
  | { kind: "delete"; key: number }
  | { kind: "advance"; ms: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("extend" as const), key: fc.nat(40), ttl: fc.integer({ min: 1, max: 50 }), replace: fc.boolean() }),
  fc.record({ kind: fc.constant("bind" as const), key: fc.nat(40), stream: fc.nat(3) }),
  fc.record({ kind: fc.constant("endStream" as const), stream: fc.nat(3), grace: fc.integer({ min: 0, max: 30 }) }),
  fc.record({ kind: fc.constant("delete" as const), key: fc.nat(40) }),
  fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 40 }) }),
);

const keyOf = (n: number): InstanceKey => ({ namespace: "ns", service: `svc-${n % 3}`, instanceId: `i-${n}` });

interface ModelLease {
  ttl: number;
  deadline: number;
  graceUntil: number;
  holder: number | undefined;
  others: number[];
}

describe("LeaseTable", () => {
  it("expires exactly the leases a naive model expires, at every sweep", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const table = new LeaseTable();
        const model = new Map<string, ModelLease>();
        let streams = [0, 1, 2, 3].map((i) => new HeartbeatStream(i));
        let now = 1_000;
        const sweep = (): void => {
          const got = table.expireDue(now).map((e) => `${keyString(e.key)}:${e.reason}`).sort();
          const want: string[] = [];
          for (const [k, l] of model) {
            if (Math.min(l.deadline, l.graceUntil) > now) continue;
            want.push(`${k}:${l.graceUntil <= l.deadline ? "STREAM_CLOSED" : "LEASE_EXPIRED"}`);
            model.delete(k);
          }
          expect(got).toEqual(want.sort());
          expect(table.size).toBe(model.size);
          const earliest = Math.min(...[...model.values()].map((l) => Math.min(l.deadline, l.graceUntil)));
          const next = table.nextDue();
          if (model.size > 0) expect(next).toBeLessThanOrEqual(earliest);
          if (next !== undefined) expect(next).toBeGreaterThan(now);
        };
        for (const o of ops) {
          switch (o.kind) {
            case "extend": {
              const k = keyString(keyOf(o.key));
              table.extend(keyOf(o.key), o.ttl, now, o.replace);
              const l = model.get(k);
              if (l === undefined) model.set(k, { ttl: o.ttl, deadline: now + o.ttl, graceUntil: Infinity, holder: undefined, others: [] });
              else {
                if (o.replace) l.ttl = o.ttl;
                l.deadline = now + l.ttl;
              }
              break;
            }
            case "bind": {
              const k = keyString(keyOf(o.key));
              const lease = table.get(k);
              const l = model.get(k);
              expect(lease === undefined).toBe(l === undefined);
              if (lease === undefined || l === undefined) break;
              table.bind(lease, streams[o.stream]!);
              if (l.holder === undefined || streams[l.holder]!.closed) l.holder = o.stream;
              else if (l.holder !== o.stream && !l.others.includes(o.stream)) l.others.push(o.stream);
              l.graceUntil = Infinity;
              break;
            }
            case "endStream": {
              const s = streams[o.stream]!;
              s.closed = true;
              table.release(s, now, o.grace);
              for (const l of model.values()) {
                if (l.holder !== o.stream) {
                  l.others = l.others.filter((x) => x !== o.stream);
                  continue;
                }
                let next: number | undefined;
                while (l.others.length > 0 && next === undefined) {
                  const c = l.others.pop()!;
                  if (!streams[c]!.closed) next = c;
                }
                l.holder = next;
                if (next === undefined) l.graceUntil = now + o.grace;
              }
              // a fresh stream takes the ended one's number
              streams = streams.map((x, i) => (i === o.stream ? new HeartbeatStream(100 + i) : x));
              break;
            }
            case "delete":
              table.delete(keyOf(o.key));
              model.delete(keyString(keyOf(o.key)));
              break;
            case "advance":
              now += o.ms;
              sweep();
              break;
          }
        }
        now += 1_000;
        sweep();
        expect(table.size).toBe(0);
        expect(table.nextDue()).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it("keeps the heap ordered when a lease leaves its middle (the last one moves up into its place)", () => {
    // deadlines in heap order; removing 11 moves the last (4) under 10, where it must rise
    const table = new LeaseTable();
    const deadlines = [1, 10, 2, 11, 12, 3, 5, 13, 14, 15, 16, 6, 4];
    for (const d of deadlines) table.extend(keyOf(d), d, 0);
    table.delete(keyOf(11));
    const expired = table.expireDue(6).map((e) => e.key.instanceId);
    expect(expired.sort()).toEqual([1, 2, 3, 4, 5, 6].map((d) => `i-${d}`).sort());
    expect(table.nextDue()).toBe(10);
  });

  it("keeps no key object of the caller's (a Register's whole spec)", () => {
    const table = new LeaseTable();
    const spec = { namespace: "ns", service: "svc", instanceId: "i-1", host: "10.0.0.1", metadata: { big: "x".repeat(1000) } };
    const lease = table.extend(spec, 10, 0);
    expect(lease.key).not.toBe(spec);
    expect(Object.values(lease)).not.toContain(spec.metadata);
    expect({ namespace: lease.key.namespace, service: lease.key.service, instanceId: lease.key.instanceId }).toEqual({ namespace: "ns", service: "svc", instanceId: "i-1" });
  });
});
