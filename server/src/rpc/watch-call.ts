import type { WatchServicesRequest } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { filterOf, namespaceOf, watchHeldOf, watchServicesOf, type Limits } from "../registry/validate.js";
import type { WatchHub } from "../watch/hub.js";
import type { WatchEventItem, WatchItem } from "../watch/items.js";
import type { FeedItem, Revisioned, Watcher } from "../watch/watcher.js";
import { filterOfPb, watchItemToPb } from "../wire/convert.js";
import { snapshotFrame, watchEventFrame } from "../wire/encoded.js";
import { denied, requirePermission } from "../domain/access.js";
import type { CallContext, Outgoing } from "./context.js";
import type { FlushScheduler, StreamOutput } from "./stream-output.js";
import type { WatchBudget } from "./watch-budget.js";

/** WatchDeps are what a watch is served with. */
export interface WatchDeps {
  readonly hub: WatchHub;
  readonly limits: Limits;
  readonly flushes: FlushScheduler;
  /** open holds the signals of the watches being served, so that a change of the access policy can end them (endAll). */
  readonly open?: OpenWatches;
  /** budget bounds the unsent bytes of all watch streams together (MAXINE_WATCH_MEMORY_BUDGET); none: unbounded (core tests). */
  readonly budget?: WatchBudget;
}

/**
 * OpenWatches are the watches being served. A watch checks its principal's
 * read permission when it opens; when the policy changes (a reload),
 * every open watch ends with UNAVAILABLE, and clients reconnect (resuming
 * where they were) under the new policy.
 */
export class OpenWatches {
  private readonly signals = new Set<CallContext["signal"]>();

  add(signal: CallContext["signal"]): void {
    this.signals.add(signal);
  }

  delete(signal: CallContext["signal"]): void {
    this.signals.delete(signal);
  }

  get size(): number {
    return this.signals.size;
  }

  endAll(reason: unknown): void {
    for (const s of [...this.signals]) s.abort(reason);
  }
}

/**
 * runWatch serves one WatchServices call, whatever its protocol: it
 * validates the request, takes one of the connection's watcher slots, opens
 * a hub watcher, and writes its items to out until the watcher ends (cleanly
 * or with its error, e.g. an overflow under the close policy) or the call
 * must end (client cancel, deadline, shutdown). The slot and the watcher
 * are released however it ends. It resolves or rejects when the call ends.
 */
export async function runWatch(deps: WatchDeps, ctx: CallContext, req: WatchServicesRequest, out: StreamOutput): Promise<void> {
  return serveWatcher(deps, ctx, openWatch(deps, ctx, req), out, outgoingOf);
}

/** ServeDeps are what serving an open watcher needs: the flush scheduler, and optionally the policy-change registry and the memory budget. */
export type ServeDeps = Pick<WatchDeps, "flushes" | "open" | "budget">;

/**
 * serveWatcher writes an open watcher's items, encoded by encode, to out
 * until the watcher ends or the call must end, and ends the watcher however
 * the call ends: the one way every watch stream is served (WatchServices
 * and the configuration Watch), whatever its protocol.
 */
export async function serveWatcher<C extends Revisioned, I extends FeedItem>(
  deps: ServeDeps,
  ctx: CallContext,
  w: Watcher<C, I>,
  out: StreamOutput,
  encode: (item: I) => Outgoing,
): Promise<void> {
  const onAbort = (reason: unknown): void => w.end(reason);
  ctx.signal.onAbort(onAbort);
  deps.open?.add(ctx.signal);
  try {
    await new Promise<void>((resolve, reject) => drain(deps, w, out, encode, (err) => (err === undefined ? resolve() : reject(err))));
  } finally {
    ctx.signal.offAbort(onAbort);
    deps.open?.delete(ctx.signal);
    w.end();
  }
}

function openWatch(deps: WatchDeps, ctx: CallContext, req: WatchServicesRequest): Watcher {
  const namespace = namespaceOf("namespace", req.namespace);
  const services = watchServicesOf("services", req.services, deps.limits);
  const filter = filterOf("filter", filterOfPb(req.filter), deps.limits);
  const held = watchHeldOf("held", req.held, deps.limits);
  // A watch reads what the principal may read: each service it names, or,
  // namespace-wide, the services of the namespace it may read (all of them,
  // at no cost, when a rule covers the whole namespace; else filtered, those
  // that appear later included; refused when no rule covers the namespace).
  // The policy cannot change under an open watch: a reload ends it.
  const access = ctx.access;
  let readable: ((service: string) => boolean) | undefined;
  if (services.length === 0) {
    if (!access.allowsAll("read", namespace)) {
      if (!access.allowsAny("read", namespace)) throw denied(access, "read", `any service of namespace ${namespace} (a namespace-wide watch)`);
      readable = (service) => access.allows("read", namespace, service);
    }
  } else {
    for (const s of services) requirePermission(access, "read", namespace, s);
  }
  const conn = ctx.connection;
  const principal = ctx.principal.name;
  conn.acquire("watchers", principal);
  let watcher: Watcher;
  try {
    watcher = deps.hub.watch({ namespace, services, filter, resumeRevision: Number(req.resumeRevision), registryId: req.registryId, held, readable });
  } catch (err) {
    conn.release("watchers", principal);
    throw err;
  }
  watcher.onEnd(() => conn.release("watchers", principal));
  return watcher;
}

/**
 * drain writes the watcher's items until the watcher ends, then calls done
 * (with the watcher's error, if any). A watcher woken by a change is flushed
 * once the dispatch is over (FlushScheduler: in turns, no promise per
 * watcher): what it has ready then (a burst of changes, the backlog of a
 * client that was not reading, a resume's replay) is read from the shared
 * history at its cursor and written until the stream's buffer is full; the
 * rest waits until the client reads again (whenWritable), so the stream's
 * flow control paces every catch-up and nothing is copied per watcher.
 */
function drain<C extends Revisioned, I extends FeedItem>(
  { flushes, budget }: ServeDeps,
  w: Watcher<C, I>,
  out: StreamOutput,
  encode: (item: I) => Outgoing,
  done: (err?: unknown) => void,
): void {
  let finished = false;
  const counted = budget?.add(w, out);
  const finish = (err?: unknown): void => {
    if (finished) return;
    finished = true;
    if (counted !== undefined) budget!.remove(counted);
    done(err);
  };
  // one closure for every wake-up of this stream, not one per write
  const wake = (): void => flushes.soon(write);
  const write = (): void => {
    if (finished) return;
    try {
      let item = w.take();
      if (item === undefined) {
        const ended = w.endedWith;
        if (ended !== undefined) return finish(ended.error);
        return w.whenQueued(wake);
      }
      while (item !== undefined && out.push(encode(item))) item = w.take();
      const writable = out.flush();
      if (writable) w.whenQueued(wake);
      else out.whenWritable(write);
      // after the waits are set: a stream the budget cuts wakes them, and the call ends
      if (counted !== undefined) budget!.update(counted);
    } catch (err) {
      finish(err);
    }
  };
  write();
}

// Each event's answer is kept per event item for the fan-out: every
// watcher without a filter gets the same item for a change (items.ts), so
// the same bytes, encoded once. Items are immutable and live as long as
// their change is in the bounded watch history, so the cache is a memo of a
// pure function, bounded by MAXINE_WATCH_HISTORY, not by the instances
// stored. (A filtered watcher's items are its own: encoded per watcher.)
const events = new WeakMap<WatchEventItem, Outgoing>();

/** outgoingOf is a watch item as an answer: protobuf frames from cached encodings, the message for other codecs. */
export function outgoingOf(item: WatchItem): Outgoing {
  switch (item.kind) {
    case "snapshot":
      return { frame: () => snapshotFrame(item.instances, item.removed), message: () => watchItemToPb(item) };
    case "event": {
      let answer = events.get(item);
      if (answer === undefined) {
        let frame: Uint8Array | undefined;
        let message: ReturnType<typeof watchItemToPb> | undefined;
        answer = { frame: () => (frame ??= watchEventFrame(item)), message: () => (message ??= watchItemToPb(item)) };
        events.set(item, answer);
      }
      return answer;
    }
    default:
      return { message: () => watchItemToPb(item) };
  }
}
