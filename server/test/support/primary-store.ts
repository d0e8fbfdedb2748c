import { deserialize, serialize } from "node:v8";
import type { Clock } from "../../src/domain/clock.js";
import { systemClock } from "../../src/domain/clock.js";
import { silentLogger } from "../../src/domain/logger.js";
import type { PrimaryMessage } from "../../src/cluster/messages.js";
import { PrimaryStore, type PrimaryLink } from "../../src/cluster/primary-store.js";
import { RegistryAuthority, type AuthorityOptions } from "../../src/cluster/registry-authority.js";
import { MemoryConfigStore } from "../../src/store/memory-config-store.js";

/**
 * FakeWorker is one worker's end of an in-process channel to an authority:
 * every message is copied with the v8 serializer (as node:cluster's
 * "advanced" serialization copies it) and delivered in a later turn, in
 * order, as over IPC. sent counts what the authority sent it.
 */
export interface FakeWorker {
  readonly link: PrimaryLink;
  readonly received: PrimaryMessage[];
  /** paused holds the authority's messages (a worker that does not read); resume delivers them. */
  pause(): void;
  resume(): void;
  resets: string[];
}

/** connectWorker attaches worker id to authority over a fake channel. */
export function connectWorker(authority: RegistryAuthority, id: number): FakeWorker {
  const listeners = new Set<(m: PrimaryMessage) => void>();
  let held: Array<() => void> | undefined;
  const worker: FakeWorker = {
    link: {
      send: (m) => {
        const copy = deserialize(serialize(m)) as { maxine: string } & Record<string, unknown>;
        setImmediate(() => authority.receive(id, copy));
      },
      listen: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
    },
    received: [],
    resets: [],
    pause: () => (held ??= []),
    resume: () => {
      const h = held ?? [];
      held = undefined;
      for (const f of h) f();
    },
  };
  authority.attach({
    id,
    send: (m, done) => {
      const copy = deserialize(serialize(m)) as PrimaryMessage;
      const deliver = (): void => {
        done();
        worker.received.push(copy);
        for (const l of listeners) l(copy);
      };
      setImmediate(() => (held !== undefined ? held.push(deliver) : deliver()));
    },
    reset: (why) => worker.resets.push(why),
  });
  return worker;
}

/** testAuthority is a RegistryAuthority with test settings, over override. */
export function testAuthority(over: Partial<AuthorityOptions> = {}): RegistryAuthority {
  return new RegistryAuthority({
    clock: systemClock,
    logger: silentLogger,
    graceMs: 300,
    historySize: 1000,
    maxQueuedBytes: 64 << 20,
    openConfig: async () => new MemoryConfigStore({ maxKeysPerService: 100, historyDepth: 10 }),
    ...over,
  });
}

/** primaryStore is a worker's PrimaryStore on an authority of its own (the store contract suite); closing it closes both. */
export async function primaryStore(clock: Clock = systemClock): Promise<PrimaryStore> {
  const authority = testAuthority({ clock });
  const worker = connectWorker(authority, 1);
  const store = await PrimaryStore.connect({ link: worker.link, workerId: "1", clock, logger: silentLogger });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await authority.close();
  };
  return store;
}
