import { Reason, RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import type { XdsCache, XdsSubscriber } from "../xds/cache.js";
import type { Status } from "../xds/gen/google/rpc/status_pb.js";
import type { Node } from "../xds/gen/envoy/config/core/v3/base_pb.js";
import type { DiscoveryRequest } from "../xds/gen/envoy/service/discovery/v3/discovery_pb.js";
import { sotwResponse } from "../wire/xds-wire.js";
import { TYPE_URLS, XDS_TYPES, typeOfUrl, type Packed, type XdsType } from "../xds/resources.js";
import { StreamCount, TypeSubscriptions, type XdsStreamLimits } from "../xds/subscriptions.js";
import type { CallContext } from "./context.js";
import type { BidiCall } from "./service.js";
import type { FlushScheduler, StreamOutput } from "./stream-output.js";
import type { OpenWatches } from "./watch-call.js";

/** AdsDeps are what an xDS stream reads and reports to. */
export interface AdsDeps {
  readonly cache: XdsCache;
  readonly limits: XdsStreamLimits;
  /** maxStreams bounds open xDS streams on the server (MAXINE_XDS_MAX_STREAMS). */
  readonly maxStreams: number;
  readonly flushes: FlushScheduler;
  readonly log: Logger;
  readonly stats: XdsStats;
  /** open, when set, holds the stream while it is open: a policy reload ends it (the client reconnects under the new policy). */
  readonly open?: OpenWatches;
}

/** XdsStats counts what xDS streams did, for /metrics (maxine_xds_pushes_total, maxine_xds_nacks_total by type). */
export class XdsStats {
  readonly pushes: Record<XdsType, number> = { listener: 0, route: 0, cluster: 0, endpoints: 0 };
  readonly nacks: Record<XdsType, number> = { listener: 0, route: 0, cluster: 0, endpoints: 0 };
}

/** TypeState is one resource type of a stream: the client's subscription, the latest response's nonce, and what the client holds. */
export interface TypeState {
  readonly subs: TypeSubscriptions;
  /** held is what the client holds by our account, by name (the objects sent: a resource is sent again only when its object changed). */
  held: Map<string, Packed> | undefined;
  nonce: string;
  version: string;
  /** nacked: a NACK was counted and logged since the last response; more before the next one are a client repeating itself (debug, not counted). */
  nacked: boolean;
}

/** XdsRequest is what SotW and Delta requests share: the type, the node, and the answer to an earlier response. */
interface XdsRequest {
  readonly typeUrl: string;
  readonly node?: Node | undefined;
  readonly responseNonce: string;
  readonly errorDetail?: Status | undefined;
}

/**
 * AdsStreamCall is what both xDS protocol variants do on a stream: the
 * stream's slots, a state per resource type, the client's zone (from the
 * first request's node), ACK and NACK (a NACK is logged at warn and counted,
 * once per response sent, and changes nothing: the last configuration the
 * client accepted stands and, nothing having changed, nothing is resent),
 * and when to answer. The
 * cache tells a stream of each change to what it holds (a wildcard stream,
 * of every change); the stream schedules one flush, which reads the cache's shared, already
 * encoded resources and sends what differs from what the client holds.
 * Bursts coalesce into one response per type, and a client that does not
 * read gets nothing more queued: its responses are built, current, when it
 * reads again. The stream ends on client half-close, cancel, shutdown, a
 * policy reload or a limit, and releases everything it held.
 */
export abstract class AdsStreamCall<R extends XdsRequest> implements BidiCall, XdsSubscriber {
  protected readonly types = new Map<XdsType, TypeState>();
  private readonly count: StreamCount;
  protected zone = "";
  private zoneRead = false;
  private due = false;
  private blocked = false;
  private ended = false;
  private readonly unsubscribe: () => void;

  constructor(
    protected readonly deps: AdsDeps,
    protected readonly ctx: CallContext,
    protected readonly out: StreamOutput,
  ) {
    this.count = new StreamCount(deps.limits.maxResources);
    openXdsStream(deps, ctx);
    this.unsubscribe = deps.cache.subscribe(this);
    deps.open?.add(ctx.signal);
    ctx.signal.onAbort(this);
  }

  /** callAborted ends the stream when the call must end (cancel, deadline, shutdown, a policy reload). */
  callAborted(reason: unknown): void {
    this.end(reason);
  }

  /** receive reads one request (a DiscoveryRequest or DeltaDiscoveryRequest, decoded by the framing); a limit it breaks ends the stream. */
  receive(req: unknown): void {
    if (this.ended) return;
    try {
      this.read(req as R);
    } catch (err) {
      this.end(err);
    }
  }

  /** inputEnded ends the stream cleanly: the client half-closed. */
  inputEnded(): void {
    this.end();
  }

  /** fail ends the stream with err (a frame or message the framing could not read). */
  fail(err: unknown): void {
    this.end(err);
  }

  /** changed schedules a flush: the cache tells a stream of changes to what it holds (and a wildcard stream of every change). */
  changed(): void {
    this.schedule();
  }

  /** reset schedules a flush: after a store reset anything may differ from what the client holds. */
  reset(): void {
    this.schedule();
  }

  /** apply applies a request's subscription changes to the type's state (first: the stream's first request of the type) and reports whether the subscription changed. */
  protected abstract apply(req: R, type: XdsType, t: TypeState, first: boolean): boolean;

  /** respond queues a response for the type if the client lacks something; it returns whether it did. */
  protected abstract respond(type: XdsType, t: TypeState): boolean;

  private read(req: R): void {
    const type = typeOfUrl(req.typeUrl);
    if (!this.zoneRead) {
      // the node (and its zone) comes with the first request; later ones may leave it out
      this.zoneRead = true;
      this.zone = req.node?.locality?.zone ?? "";
    }
    if (type === undefined) {
      this.deps.log.debug({ typeUrl: req.typeUrl, peer: this.ctx.peer }, "xds: a request for a type Maxine does not serve; ignored");
      return;
    }
    let t = this.types.get(type);
    const first = t === undefined;
    if (t === undefined) {
      const subs = new TypeSubscriptions(type, this.deps.cache, this, this.ctx.access, this.deps.limits, this.count, this.deps.log);
      this.types.set(type, (t = { subs, held: undefined, nonce: "", version: "", nacked: false }));
    }
    if (req.responseNonce !== "") this.answered(req, type, t);
    // an ACK or a NACK that leaves the subscription as it was has nothing to answer
    if (this.apply(req, type, t, first) || first) this.schedule();
  }

  private answered(req: R, type: XdsType, t: TypeState): void {
    const stale = req.responseNonce !== t.nonce;
    if (req.errorDetail !== undefined && t.nacked) {
      // one rejection counted and logged per response sent: a client repeating NACKs must not flood the log
      this.deps.log.debug({ type, nonce: req.responseNonce, stale }, "xds: another NACK before the next response; not counted again");
    } else if (req.errorDetail !== undefined) {
      // a rejection counts even when a newer response is already on its way: the client rejected the one it names
      t.nacked = true;
      this.deps.stats.nacks[type]++;
      this.deps.log.warn(
        { type, nonce: req.responseNonce, stale, peer: this.ctx.peer, principal: this.ctx.principal.name, error: req.errorDetail.message },
        "xds: the client rejected a response (NACK); the last configuration it accepted stands",
      );
    } else if (stale) {
      this.deps.log.debug({ type, nonce: req.responseNonce, latest: t.nonce }, "xds: a request answering an earlier response (stale nonce)");
    } else {
      this.deps.log.debug({ type, nonce: req.responseNonce }, "xds: ACK");
    }
  }

  private schedule(): void {
    if (this.due || this.ended) return;
    this.due = true;
    this.deps.flushes.soon(this.flush);
  }

  private readonly flush = (): void => {
    this.due = false;
    if (this.ended || this.blocked) return;
    try {
      for (const type of XDS_TYPES) {
        const t = this.types.get(type);
        if (t !== undefined && this.respond(type, t)) this.deps.stats.pushes[type]++;
      }
    } catch (err) {
      this.end(err); // a response the protocol cannot carry (larger than MAXINE_MAX_RESPONSE_BYTES)
      return;
    }
    if (!this.out.flush()) {
      this.blocked = true;
      this.out.whenWritable(() => {
        this.blocked = false;
        this.schedule();
      });
    }
  };

  private end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.ctx.signal.offAbort(this);
    this.deps.open?.delete(this.ctx.signal);
    this.ctx.connection.release("watchers", this.ctx.principal.name);
    this.unsubscribe();
    for (const t of this.types.values()) t.subs.close();
    this.out.close(err);
  }
}

/**
 * AdsCall is one StreamAggregatedResources stream (state of the world):
 * each request carries the type's whole subscription; each response
 * carries every subscribed resource that exists, with version_info the
 * registry revision it reflects and a nonce unique on the server. No names
 * in the first LDS or CDS request, or "*", is the wildcard.
 */
export class AdsCall extends AdsStreamCall<DiscoveryRequest> {
  protected apply(req: DiscoveryRequest, type: XdsType, t: TypeState, first: boolean): boolean {
    const names = req.resourceNames;
    const wildcardable = type === "listener" || type === "cluster";
    // no names in the first request of LDS or CDS is the wildcard, as is "*"; later, an empty list unsubscribes from everything named
    const wildcardChanged = t.subs.setWildcard(wildcardable && (names.includes("*") || (names.length === 0 && (first || t.subs.wildcard))));
    if (!t.subs.replace(names, "resource_names") && !wildcardChanged) return false;
    // what the client unsubscribed from no longer counts as held: subscribed again, it is sent again
    if (t.held !== undefined) for (const name of t.held.keys()) if (!t.subs.named.has(name) && !t.subs.wildcard) t.held.delete(name);
    return true;
  }

  protected respond(type: XdsType, t: TypeState): boolean {
    const now = t.subs.current(this.zone);
    // the first response of a subscription goes out even when empty: the client then knows that nothing exists
    if (t.held !== undefined && sameResources(now, t.held)) return false;
    t.held = now;
    t.nonce = this.deps.cache.nonce();
    t.nacked = false;
    t.version = String(this.deps.cache.revision());
    this.out.push(sotwResponse({ versionInfo: t.version, resources: [...now.values()], typeUrl: TYPE_URLS[type], nonce: t.nonce }));
    return true;
  }
}

/**
 * openXdsStream takes an xDS stream's slots, or throws RESOURCE_EXHAUSTED
 * naming the setting: one of MAXINE_XDS_MAX_STREAMS, and a watch slot of the
 * connection and the principal (MAXINE_MAX_WATCHERS_PER_CONNECTION,
 * MAXINE_MAX_WATCHERS_PER_PRINCIPAL), released when the stream ends.
 */
export function openXdsStream(deps: AdsDeps, ctx: CallContext): void {
  if (deps.cache.streams >= deps.maxStreams) {
    throw new RegistryError(Reason.RESOURCE_EXHAUSTED, `xds: the server holds the maximum of ${deps.maxStreams} xDS streams (MAXINE_XDS_MAX_STREAMS)`);
  }
  ctx.connection.acquire("watchers", ctx.principal.name);
}

function sameResources(a: ReadonlyMap<string, Packed>, b: ReadonlyMap<string, Packed>): boolean {
  if (a.size !== b.size) return false;
  for (const [name, p] of a) if (b.get(name) !== p) return false;
  return true;
}
