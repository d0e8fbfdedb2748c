import type { Emitter } from "../../src/emitter.js";
import type { WatchChange } from "../../src/instance-view.js";
import type { Watcher } from "../../src/watcher.js";

/**
 * Scope collects cleanups (close a session, kill a child, drop a connection)
 * and runs them in reverse order, so afterEach can leave nothing behind even
 * when a test failed halfway.
 */
export class Scope {
  private readonly cleanups: Array<() => unknown> = [];

  /** defer registers a cleanup and returns value, for `const s = scope.defer(new Session(...), (s) => s.close())`. */
  defer<T>(value: T, cleanup: (value: T) => unknown): T {
    this.cleanups.push(() => cleanup(value));
    return value;
  }

  /** close runs every cleanup, last first; it reports the first failure after running them all. */
  async close(): Promise<void> {
    let first: unknown;
    while (this.cleanups.length > 0) {
      try {
        await this.cleanups.pop()!();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}

type EventsOf<E> = E extends Emitter<infer Ev> ? Ev : never;

/**
 * nextEvent resolves with the arguments of the next event that passes
 * accept, or rejects after timeoutMs; it removes its listener and timer
 * either way.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any event map: the constraint only has to admit every Emitter subclass
export function nextEvent<E extends Emitter<any>, K extends keyof EventsOf<E> & string>(
  emitter: E,
  event: K,
  timeoutMs: number,
  accept: (...args: EventsOf<E>[K] & unknown[]) => boolean = () => true,
): Promise<EventsOf<E>[K]> {
  return new Promise((resolve, reject) => {
    const on = emitter.on.bind(emitter) as unknown as (k: string, l: (...a: unknown[]) => void) => () => void;
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no "${event}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = on(event, (...args: unknown[]) => {
      if (!(accept as (...a: unknown[]) => boolean)(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args as EventsOf<E>[K]);
    });
  });
}

/** collectChanges records every change a watcher emits from now on, as "type:instanceId@revision". */
export function collectChanges(watcher: Watcher): { changes: WatchChange[]; summary(): string[] } {
  const changes: WatchChange[] = [];
  watcher.on("change", (c) => changes.push(c));
  return { changes, summary: () => changes.map((c) => `${c.type}:${c.instance.instanceId}@${c.revision}`) };
}
