import { create } from "@bufbuild/protobuf";
import { Reason, RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import type { XdsCache, XdsSubscriber } from "../xds/cache.js";
import { DiscoveryResponseSchema, type DiscoveryRequest } from "../xds/gen/envoy/service/discovery/v3/discovery_pb.js";
import { TYPE_URLS, XDS_TYPES, typeOfUrl, type Packed, type XdsType } from "../xds/resources.js";
import { StreamCount, TypeSubscriptions, type XdsStreamLimits } from "../xds/subscriptions.js";
import { outgoing, type CallContext } from "./context.js";
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

interface SotwType {
  readonly subs: TypeSubscriptions;
  /** sent is what the last response carried, by name: a resource is sent again only when its object changed. */
  sent: ReadonlyMap<string, Packed> | undefined;
  nonce: string;
  version: string;
}

/**
 * AdsCall is one StreamAggregatedResources stream (state of the world): per
 * type, the client's subscription, the nonce and version of the last
 * response and what it carried. A response goes out when the client
 * subscribes to something it was not sent, or when a resource it holds
 * changed in the registry (the cache tells every stream; the stream reads
 * the shared, already encoded resources). An ACK changes nothing; a NACK is
 * logged and counted, and since nothing changed, nothing is resent until
 * the next change. Bursts of changes coalesce into one response per type,
 * and a client that does not read gets nothing more queued: responses are
 * built when its stream can take them.
 */
export class AdsCall implements BidiCall, XdsSubscriber {
  private readonly types = new Map<XdsType, SotwType>();
  private readonly count: StreamCount;
  private zone: string | undefined;
  private due = false;
  private blocked = false;
  private ended = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly deps: AdsDeps,
    private readonly ctx: CallContext,
    private readonly out: StreamOutput,
  ) {
    this.count = new StreamCount(deps.limits.maxResources);
    openXdsStream(deps, ctx);
    this.unsubscribe = deps.cache.subscribe(this);
    deps.open?.add(ctx.signal);
    ctx.signal.onAbort(this);
  }

  callAborted(reason: unknown): void {
    this.end(reason);
  }

  receive(req: unknown): void {
    if (this.ended) return;
    try {
      this.read(req as DiscoveryRequest);
    } catch (err) {
      this.end(err);
    }
  }

  inputEnded(): void {
    this.end();
  }

  fail(err: unknown): void {
    this.end(err);
  }

  changed(namespace: string, service: string): void {
    if (this.due || this.ended) return;
    for (const t of this.types.values()) {
      if (t.subs.touches(namespace, service)) {
        this.schedule();
        return;
      }
    }
  }

  reset(): void {
    this.schedule();
  }

  private read(req: DiscoveryRequest): void {
    const type = typeOfUrl(req.typeUrl);
    // the node (and its zone) comes with the first request; later ones may leave it out
    this.zone ??= req.node?.locality?.zone ?? "";
    if (type === undefined) {
      this.deps.log.debug({ typeUrl: req.typeUrl, peer: this.ctx.peer }, "xds: a request for a type Maxine does not serve; ignored");
      return;
    }
    let t = this.types.get(type);
    const first = t === undefined;
    if (t === undefined) {
      const subs = new TypeSubscriptions(type, this.deps.cache, this.ctx.access, this.deps.limits, this.count, this.deps.log);
      this.types.set(type, (t = { subs, sent: undefined, nonce: "", version: "" }));
    }
    if (req.responseNonce !== "") {
      const stale = req.responseNonce !== t.nonce;
      if (req.errorDetail !== undefined) {
        // a rejection counts even when a newer response is already on its way: the client rejected the one it names
        this.deps.stats.nacks[type]++;
        this.deps.log.warn(
          { type, nonce: req.responseNonce, stale, acceptedVersion: req.versionInfo, peer: this.ctx.peer, principal: this.ctx.principal.name, error: req.errorDetail.message },
          "xds: the client rejected a response (NACK); the last configuration it accepted stands",
        );
      } else if (stale) {
        this.deps.log.debug({ type, nonce: req.responseNonce, latest: t.nonce }, "xds: a request answering an earlier response (stale nonce)");
      } else {
        this.deps.log.debug({ type, version: req.versionInfo, nonce: req.responseNonce }, "xds: ACK");
      }
    }
    const names = req.resourceNames;
    const wildcardable = type === "listener" || type === "cluster";
    // SotW: no names in the first request of LDS or CDS is the wildcard, as is "*"; later an empty list unsubscribes
    const wildcard = wildcardable && (names.includes("*") || (names.length === 0 && (first || t.subs.wildcard)));
    t.subs.setWildcard(wildcard);
    t.subs.replace(names, "resource_names");
    // what the client holds no longer counts as sent once it unsubscribes from it
    if (t.sent !== undefined) {
      const kept = new Map<string, Packed>();
      for (const [name, p] of t.sent) if (t.subs.named.has(name) || t.subs.wildcard) kept.set(name, p);
      t.sent = kept;
    }
    // a response goes out only for what the client was not sent (send compares): an ACK or a NACK sends nothing
    this.schedule();
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
        if (t !== undefined) this.send(type, t);
      }
    } catch (err) {
      this.end(err); // a response the protocol cannot carry (larger than MAXINE_MAX_RESPONSE_BYTES)
      return;
    }
    if (!this.out.flush()) {
      // a client that does not read gets nothing more queued: what changed meanwhile is sent, current, once it reads
      this.blocked = true;
      this.out.whenWritable(() => {
        this.blocked = false;
        this.schedule();
      });
    }
  };

  private send(type: XdsType, t: SotwType): void {
    const now = t.subs.current(this.zone ?? "");
    if (t.sent !== undefined && sameResources(now, t.sent)) return;
    // the first response of a subscription goes out even when empty: the client then knows nothing exists
    t.sent = now;
    t.nonce = this.deps.cache.nonce();
    t.version = String(this.deps.cache.revision());
    const resources = [...now.values()].map((p) => p.any);
    this.out.push(outgoing(create(DiscoveryResponseSchema, { versionInfo: t.version, resources, typeUrl: TYPE_URLS[type], nonce: t.nonce })));
    this.deps.stats.pushes[type]++;
  }

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
