import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { instanceDigest } from "@maxine/sdk/digest";
import type { Instance } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { FilterSpec } from "../src/domain/filter.js";
import type { WatchRequest } from "../src/watch/hub.js";
import type { WatchItem } from "../src/watch/items.js";
import { recordDigest } from "../src/wire/digest.js";
import { instanceToPb } from "../src/wire/convert.js";
import { drain, instance, makeCore } from "./support/core.js";

// Property: whatever a client holds (the registry's current instances,
// older or other versions of them, instances that are gone or were never
// there) and whatever the registry then holds, a watcher that names its
// holdings and cannot be resumed (another registry id) ends its opening
// snapshot with a view equal to what a whole snapshot gives, and is sent
// no instance it already held as it is. The client side computes digests
// from the Instance messages it holds, as an SDK does.

const SERVICES = ["s0", "s1", "s2"];
const IDS = ["a", "b", "c", "d", "e"];
const ALL: FilterSpec = { tags: [], version: "", zone: "", metadata: {} };

const spec = fc.record({ port: fc.integer({ min: 1, max: 3 }), tags: fc.subarray(["x", "y"]), version: fc.constantFrom("", "v1") });
type Spec = { port: number; tags: string[]; version: string };
const slot = fc.record({ service: fc.constantFrom(...SERVICES), id: fc.constantFrom(...IDS) });
// what the client holds of one slot: the registry's current content, another content, or nothing
const holding = fc.oneof(fc.constant<"current">("current"), spec, fc.constant<"none">("none"));
const op = fc.oneof(
  fc.record({ kind: fc.constant<"put">("put"), slot, spec }),
  fc.record({ kind: fc.constant<"remove">("remove"), slot }),
);

type Op = { kind: "put"; slot: { service: string; id: string }; spec: Spec } | { kind: "remove"; slot: { service: string; id: string } };
type View = Map<string, Instance>;
const keyOf = (service: string, id: string): string => `${service}/${id}`;

function apply(view: View, items: readonly WatchItem[]): { sent: number; differential: boolean } {
  let sent = 0;
  const chunk: Instance[] = [];
  const removed: string[] = [];
  for (const item of items) {
    if (item.kind === "snapshot") {
      chunk.push(...item.instances.map(instanceToPb));
      removed.push(...(item.removed ?? []).map((k) => keyOf(k.service, k.instanceId)));
      sent += item.instances.length;
    } else if (item.kind === "snapshot_end") {
      if (!item.differential) view.clear();
      for (const k of removed) view.delete(k);
      for (const i of chunk) view.set(keyOf(i.service, i.instanceId), i);
      return { sent, differential: item.differential === true };
    }
  }
  throw new Error("no snapshot_end");
}

const contentOf = (view: View): Record<string, bigint> =>
  Object.fromEntries([...view].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, i]) => [k, instanceDigest(i)]));

describe("a differential snapshot leaves the client equal to the registry", () => {
  it("for any holdings, registry state, scope and filter", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 25 }),
        fc.array(fc.tuple(slot, holding), { maxLength: 15 }),
        fc.array(op, { maxLength: 10 }),
        fc.subarray(SERVICES),
        fc.boolean(),
        fc.integer({ min: 1, max: 4 }),
        async (setup, holdings, later, services, filtered, chunk) => {
          const { registry, hub, store } = makeCore({ watch: { digestOf: recordDigest, snapshotChunk: chunk } });
          const run = async (o: Op): Promise<void> => {
            if (o.kind === "put") await registry.register(instance(o.slot.id, { service: o.slot.service, ...o.spec }), undefined);
            else await registry.deregister({ namespace: "default", service: o.slot.service, instanceId: o.slot.id }).catch(() => 0);
          };
          for (const o of setup) await run(o);
          // the client's view: per slot, what the registry has now, another version of it, or nothing
          const view: View = new Map();
          for (const [s, h] of holdings) {
            if (h === "none") continue;
            const current = store.service("default", s.service)?.get(s.id);
            if (h === "current") {
              if (current !== undefined) view.set(keyOf(s.service, s.id), instanceToPb(current));
            } else {
              const other = (h as Spec);
              view.set(keyOf(s.service, s.id), { ...instanceToPb(current ?? ({ ...(await fakeRecord(s.service, s.id)) } as never)), port: other.port + 10, tags: other.tags, version: other.version });
            }
          }
          for (const o of later) await run(o);
          const held = new Map<string, Map<string, bigint>>();
          for (const i of view.values()) (held.get(i.service) ?? held.set(i.service, new Map()).get(i.service)!).set(i.instanceId, instanceDigest(i));
          const filter: FilterSpec = filtered ? { ...ALL, tags: ["x"] } : ALL;
          const req: WatchRequest = { namespace: "default", services, filter, resumeRevision: 1, registryId: "another-registry", held };
          const w = hub.watch(req);
          const before = new Map(view);
          const { sent, differential } = apply(view, await drain(w));
          expect(differential).toBe(true);
          const whole: View = new Map();
          apply(whole, await drain(hub.watch({ ...req, held: undefined })));
          expect(contentOf(view)).toEqual(contentOf(whole));
          // nothing held as it is was sent again
          const unchanged = [...whole].filter(([k, i]) => before.has(k) && instanceDigest(before.get(k)!) === instanceDigest(i)).length;
          expect(sent).toBe(whole.size - unchanged);
          w.end();
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** fakeRecord is an instance the registry never had, as a record (for holdings of instances that are gone or never were). */
async function fakeRecord(service: string, id: string) {
  const { registry, store } = makeCore();
  await registry.register(instance(id, { service }), undefined);
  return store.service("default", service)!.get(id)!;
}
