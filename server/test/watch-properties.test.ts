import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { matches, type FilterSpec } from "../src/domain/filter.js";
import type { WatchSettings } from "../src/watch/hub.js";
import type { Change } from "../src/store/store.js";
import { WatchClient, type Scope } from "./support/watch-client.js";
import { instance, makeCore } from "./support/core.js";

// Random interleavings of changes, slow reads, disconnects with resumes, and
// overflows (both policies, small queues and histories): every watcher's
// sequence must never go back in time, must be gap-free unless it is
// explicitly reset by a snapshot, and must end equal to the registry.

const SCOPES: readonly Scope[] = [
  { services: [], filter: { tags: [], version: "", zone: "", metadata: {} } },
  { services: ["a"], filter: { tags: [], version: "", zone: "", metadata: {} } },
  { services: [], filter: { tags: ["t"], version: "", zone: "", metadata: {} } },
  { services: ["a", "b"], filter: { tags: ["t"], version: "", zone: "", metadata: {} } },
];

type Action =
  | { readonly kind: "register"; readonly id: number; readonly service: "a" | "b"; readonly tagged: boolean; readonly port: number }
  | { readonly kind: "deregister"; readonly id: number; readonly service: "a" | "b" }
  | { readonly kind: "read"; readonly client: number; readonly n: number }
  | { readonly kind: "disconnect"; readonly client: number }
  | { readonly kind: "tick" };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("register" as const), id: fc.nat(5), service: fc.constantFrom("a" as const, "b" as const), tagged: fc.boolean(), port: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("deregister" as const), id: fc.nat(5), service: fc.constantFrom("a" as const, "b" as const) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("read" as const), client: fc.nat(SCOPES.length - 1), n: fc.integer({ min: 1, max: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("disconnect" as const), client: fc.nat(SCOPES.length - 1) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "tick" as const }) },
);

const settings: fc.Arbitrary<Partial<WatchSettings>> = fc.record({
  maxQueue: fc.integer({ min: 1, max: 6 }),
  historySize: fc.integer({ min: 0, max: 15 }),
  overflow: fc.constantFrom("reset" as const, "close" as const),
  snapshotChunk: fc.integer({ min: 1, max: 3 }),
  progressIntervalMs: fc.constant(1_000),
});

describe("watch properties (fast-check)", () => {
  it("every watcher's sequence is ordered, gap-free or explicitly reset, and ends equal to the registry", async () => {
    await fc.assert(
      fc.asyncProperty(settings, fc.array(action, { minLength: 20, maxLength: 150 }), async (watch, actions) => {
        const { registry, hub, store, clock } = makeCore({ watch });
        const log: Change[] = [];
        const unsubscribe = store.subscribe((c) => log.push(c));
        const clients = SCOPES.map((scope) => new WatchClient(hub, scope, log));
        for (const a of actions) {
          switch (a.kind) {
            case "register":
              await registry.register(instance(`i${a.id}`, { service: a.service, tags: a.tagged ? ["t"] : [], port: a.port }), undefined);
              break;
            case "deregister":
              await registry.deregister({ namespace: "", service: a.service, instanceId: `i${a.id}` }).catch(() => {});
              break;
            case "read":
              clients[a.client]!.read(a.n);
              break;
            case "disconnect":
              clients[a.client]!.disconnect();
              break;
            case "tick":
              await clock.advance(1_000);
              break;
          }
        }
        for (const c of clients) {
          c.read(Infinity);
          if (!c.open) c.read(Infinity); // it was ended by an overflow under close: resume, then read it all
          expect(c.open).toBe(true);
          expect(c.state).toEqual(truth(store, c.scope));
          c.disconnect();
        }
        unsubscribe();
        hub.close();
      }),
      { numRuns: 500 },
    );
  });
});

function truth(store: ReturnType<typeof makeCore>["store"], scope: Scope): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, view] of store.services("default")) {
    if (scope.services.length > 0 && !scope.services.includes(name)) continue;
    for (const r of view.sorted()) if (matches(scope.filter as FilterSpec, r)) out.set(`${name}/${r.instanceId}`, r.modRevision);
  }
  return new Map([...out].sort());
}

