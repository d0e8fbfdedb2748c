import { Registry, type LeaseSettings, type Quotas } from "../../src/registry/registry.js";
import { silentLogger } from "../../src/domain/logger.js";
import { DEFAULT_LIMITS, type InstanceInput, type Limits } from "../../src/registry/validate.js";
import { MemoryStore } from "../../src/store/memory-store.js";
import { WatchHub, type WatchSettings } from "../../src/watch/hub.js";
import type { WatchItem } from "../../src/watch/items.js";
import type { Watcher } from "../../src/watch/watcher.js";
import { FakeClock } from "./fake-clock.js";

/** Core is a registry and watch hub on a memory store and a fake clock. */
export interface Core {
  clock: FakeClock;
  store: MemoryStore;
  registry: Registry;
  hub: WatchHub;
}

export const LEASE: LeaseSettings = {
  defaultTtlMs: 10_000,
  minTtlMs: 1_000,
  maxTtlMs: 3_600_000,
  graceMs: 1_000,
  maxHeartbeatStreams: 100,
};

export const WATCH: WatchSettings = {
  historySize: 100,
  maxQueue: 50,
  overflow: "reset",
  maxWatchers: 100,
  snapshotChunk: 3,
  progressIntervalMs: 10_000,
};

export function makeCore(
  opts: { lease?: Partial<LeaseSettings>; watch?: Partial<WatchSettings>; limits?: Partial<Limits>; random?: () => number; quotas?: Quotas } = {},
): Core {
  const clock = new FakeClock();
  const store = new MemoryStore();
  let n = 0;
  const registry = new Registry({
    store,
    clock,
    logger: silentLogger,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    lease: { ...LEASE, ...opts.lease },
    random: opts.random,
    quotas: opts.quotas,
    newId: () => `gen-${++n}`,
  });
  const hub = new WatchHub(store, clock, silentLogger, { ...WATCH, ...opts.watch });
  return { clock, store, registry, hub };
}

export function instance(id: string, over: Partial<InstanceInput> = {}): InstanceInput {
  return {
    namespace: "",
    service: "payments",
    instanceId: id,
    host: "10.0.0.1",
    port: 8080,
    version: "",
    zone: "",
    tags: [],
    metadata: {},
    weight: 0,
    status: undefined,
    ...over,
  };
}

/** drain takes every item a watcher has ready, without waiting. */
export async function drain(w: Watcher): Promise<WatchItem[]> {
  const out: WatchItem[] = [];
  for (let item = w.take(); item !== undefined; item = w.take()) out.push(item);
  return out;
}

/** describe an item compactly for assertions. */
export function brief(item: WatchItem): string {
  switch (item.kind) {
    case "snapshot":
      return `snapshot[${item.instances.map((i) => i.instanceId).join(",")}]`;
    case "snapshot_end":
      return `end@${item.revision}${item.reason ? `:${item.reason}` : ""}`;
    case "event":
      return `${item.type} ${item.instance.instanceId}@${item.revision}${item.removalReason ? `:${item.removalReason}` : ""}`;
    case "progress":
      return `progress@${item.revision}`;
  }
}
