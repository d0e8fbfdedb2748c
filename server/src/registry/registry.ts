import { randomUUID } from "node:crypto";
import type { Random } from "@maxine/sdk/balancer";
import type { Change, Store } from "../store/store.js";
import { DeadlineTimer, type Clock } from "../domain/clock.js";
import { Reason, RegistryError, invalid } from "../domain/errors.js";
import { isEmptyFilter, matches } from "../domain/filter.js";
import { effectiveStatus, keyString, UNKNOWN_LEASE, type InstanceKey, type InstanceRecord, type LeaseState, type OperatorStatus, type Status } from "../domain/instance.js";
import { HeartbeatStream, LeaseTable } from "./leases.js";
import { Usage } from "./usage.js";
import { OPEN, denied, notOwner, requirePermission, type Access } from "../domain/access.js";
import type { Logger } from "../domain/logger.js";
import { Selector, type Strategy } from "./select.js";
import type { FilterSpec } from "../domain/filter.js";
import { filterOf, hashKeyOf, keyOf, namespaceOf, serviceOf, specOf, textOf, type InstanceInput, type Limits } from "./validate.js";
import { checkOf, DEFAULT_CHECK_BOUNDS, type CheckBounds } from "./check-rules.js";
import { checkPort, sameCheck, type CheckResult, type CheckSpec, type CheckTargets, type HealthSpec } from "../domain/health.js";

/** LeaseSettings bound lease TTLs and set the grace after a heartbeat stream ends. */
export interface LeaseSettings {
  readonly defaultTtlMs: number;
  readonly minTtlMs: number;
  readonly maxTtlMs: number;
  /** graceMs is how long an instance outlives its heartbeat stream, so a reconnect causes no churn. */
  readonly graceMs: number;
  /** maxHeartbeatStreams bounds open heartbeat streams in total. */
  readonly maxHeartbeatStreams: number;
}

/**
 * Quotas bound what callers may store, in all and per principal (settings
 * MAXINE_MAX_INSTANCES, MAXINE_MAX_SERVICES, MAXINE_MAX_NAMESPACES,
 * MAXINE_MAX_INSTANCES_PER_PRINCIPAL). They refuse new instances only:
 * nothing already stored is lost when a quota is lowered.
 */
export interface Quotas {
  readonly maxInstances: number;
  readonly maxServices: number;
  readonly maxNamespaces: number;
  readonly maxInstancesPerPrincipal: number;
}

/** UNLIMITED_QUOTAS bound nothing (tests of other things). */
export const UNLIMITED_QUOTAS: Quotas = {
  maxInstances: Number.MAX_SAFE_INTEGER,
  maxServices: Number.MAX_SAFE_INTEGER,
  maxNamespaces: Number.MAX_SAFE_INTEGER,
  maxInstancesPerPrincipal: Number.MAX_SAFE_INTEGER,
};

/** RegistryOptions are the parts a Registry is built from. */
export interface RegistryOptions {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly limits: Limits;
  readonly lease: LeaseSettings;
  readonly quotas?: Quotas;
  /** audit logs every write (Register, Deregister, status change, refusal) at info (MAXINE_AUDIT_LOG); on by default. */
  readonly audit?: boolean;
  readonly random?: Random;
  readonly newId?: () => string;
  /** checkBounds bound a check's interval (MAXINE_CHECK_INTERVAL_MIN..MAX); default DEFAULT_CHECK_BOUNDS. */
  readonly checkBounds?: CheckBounds;
  /**
   * checkTargets vets where a check's probes go (the allow-list). Unset:
   * Register refuses every check (a registry that runs no checker).
   */
  readonly checkTargets?: CheckTargets;
}

/** Registered is the outcome of register. */
export interface Registered {
  readonly instance: InstanceRecord;
  /** ttlMs and expiresAt are undefined for an instance registered with a check by Register: it has no lease. */
  readonly ttlMs: number | undefined;
  readonly expiresAt: number | undefined;
  readonly revision: number;
}

/** BeatInput is one heartbeat entry as a client sent it. */
export interface BeatInput {
  readonly key: InstanceKey | undefined;
  readonly status: Status | undefined;
  readonly load: number | undefined;
  /** register, when set, is the whole instance (and its lease TTL) to register if the registry does not hold key. */
  readonly register?: { readonly instance: InstanceInput | undefined; readonly ttlMs: number | undefined } | undefined;
}

/** BeatOutcome answers one BeatInput. */
export type BeatOutcome =
  | { readonly key: InstanceKey; readonly result: "RENEWED" | "REGISTERED"; readonly expiresAt: number }
  | { readonly key: InstanceKey; readonly result: "UNKNOWN" | "PERMISSION_DENIED"; readonly message: string }
  | { readonly key: InstanceKey | undefined; readonly result: "INVALID"; readonly message: string };

/** DiscoverQuery is a Discover request as a client sent it. */
export interface DiscoverQuery {
  readonly namespace: string;
  readonly service: string;
  readonly filter: FilterSpec | undefined;
  readonly strategy: Strategy;
  readonly hashKey: string;
  readonly preferredZone: string;
  readonly includeAll: boolean;
}

/** Discovered is the outcome of discover. */
export interface Discovered {
  /** chosen is the SERVING instance chosen; undefined only when includeAll was asked and none of the matching instances is SERVING. */
  readonly chosen: InstanceRecord | undefined;
  /** all matching instances (any status) when includeAll was asked. */
  readonly all: readonly InstanceRecord[];
  /** leases holds, for each of all (same order), what this server knows of its lease right now. */
  readonly leases: readonly LeaseState[];
  readonly revision: number;
}

/** Counts are running totals of the core's calls, for /metrics (plain integers: the hot paths pay an increment). */
export interface Counts {
  heartbeatStreamsOpened: number;
  heartbeatMessages: number;
  beatsRenewed: number;
  beatsUnknown: number;
  beatsRegistered: number;
}

/** ServiceCount summarises one service for ListServices. */
export interface ServiceCount {
  readonly service: string;
  readonly instanceCount: number;
  readonly servingCount: number;
}

/**
 * Registry is the domain core: it validates requests, keeps leases and
 * heartbeat-stream bindings, expires instances on time, and answers
 * discovery from the store's view. It knows nothing of RPC or of where the
 * store keeps state.
 */
export class Registry {
  readonly store: Store;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly limits: Limits;
  private readonly lease: LeaseSettings;
  private readonly leases = new LeaseTable();
  private readonly selector: Selector;
  private readonly newId: () => string;
  private readonly streams = new Set<HeartbeatStream>();
  private readonly quotas: Quotas;
  private readonly auditEnabled: boolean;
  private readonly checkBounds: CheckBounds;
  private readonly checkTargets: CheckTargets | undefined;
  /** usage counts what the quotas bound, from the store's change feed. */
  readonly usage: Usage;
  /** counts are running totals of calls, read by /metrics. */
  readonly counts: Counts = {
    heartbeatStreamsOpened: 0,
    heartbeatMessages: 0,
    beatsRenewed: 0,
    beatsUnknown: 0,
    beatsRegistered: 0,
  };
  private nextStreamId = 1;
  private readonly expiry: DeadlineTimer;
  private closed = false;

  constructor(opts: RegistryOptions) {
    this.store = opts.store;
    this.clock = opts.clock;
    this.expiry = new DeadlineTimer(opts.clock, () => void this.expire());
    this.log = opts.logger;
    this.limits = opts.limits;
    this.lease = opts.lease;
    this.selector = new Selector(opts.random);
    this.newId = opts.newId ?? randomUUID;
    this.quotas = opts.quotas ?? UNLIMITED_QUOTAS;
    this.auditEnabled = opts.audit ?? true;
    this.checkBounds = opts.checkBounds ?? DEFAULT_CHECK_BOUNDS;
    this.checkTargets = opts.checkTargets;
    this.usage = new Usage(this.store);
    this.store.subscribe((c) => this.usage.apply(c));
    this.store.subscribeResets?.(() => this.usage.recount());
  }

  /** openStreams counts open heartbeat streams. */
  get openStreams(): number {
    return this.streams.size;
  }

  /** leaseCount counts live leases. */
  get leaseCount(): number {
    return this.leases.size;
  }

  /**
   * register stores an instance and starts or renews its lease. Registering
   * an unchanged instance only renews the lease: no revision, no event.
   */
  async register(input: InstanceInput | undefined, ttlMs: number | undefined, access: Access = OPEN): Promise<Registered> {
    this.assertOpen();
    try {
      const r = await this.registerInstance(input, ttlMs, access, true);
      this.audit("Register", access, keyString(r.instance), "ok", r.revision);
      return r;
    } catch (err) {
      this.audit("Register", access, inputKey(input), err);
      throw err;
    }
  }

  /**
   * audit logs a write at info: who (principal), what (method, instance key)
   * and the result (ok with the revision, or the refusal's reason and
   * message). Credentials never reach the core, so they cannot reach this log.
   */
  private audit(method: string, access: Access, instance: string, outcome: unknown, revision?: number): void {
    if (!this.auditEnabled) return;
    if (outcome === "ok") {
      this.log.info({ audit: method, principal: access.principal, instance, result: "ok", revision }, "audit");
      return;
    }
    const err = outcome instanceof RegistryError ? outcome : undefined;
    this.log.info({ audit: method, principal: access.principal, instance, result: err?.reason ?? "error", message: err?.message }, "audit");
  }

  /**
   * registerInstance is register's work, also done for a beat that carries
   * its instance (not counted as a Register call). The caller needs the
   * register permission on the service; an instance another principal owns
   * needs admin (it keeps its owner); a new instance must fit the quotas.
   */
  private async registerInstance(input: InstanceInput | undefined, ttlMs: number | undefined, access: Access, unary = false): Promise<Registered> {
    let spec = specOf(input, this.limits, access.principal);
    if (input?.healthCheck !== undefined) spec = { ...spec, health: { check: checkOf("instance.health_check", input.healthCheck, this.checkBounds) } };
    // Register with a check makes a persistent instance (no lease); a beat's registration binds it to its session as any other
    const leased = !(unary && spec.health !== undefined);
    const ttl = leased ? this.ttlOf(ttlMs) : undefined;
    if (spec.instanceId === "") spec = { ...spec, instanceId: this.newId() };
    requirePermission(access, "register", spec.namespace, spec.service);
    if (spec.health !== undefined) {
      if (this.checkTargets === undefined) throw invalid("instance.health_check", "this server runs no health checks");
      await this.checkTargets.vet(spec.host, checkPort(spec.health.check, spec.port));
    }
    const existing = this.store.get(spec);
    let guard: string | undefined = access.principal;
    if (existing !== undefined && existing.owner !== access.principal) {
      if (!access.allows("admin", spec.namespace, spec.service)) throw notOwner(access, keyString(spec), existing.owner);
      spec = { ...spec, owner: existing.owner };
      guard = existing.owner;
    }
    if (existing === undefined) this.checkQuotas(spec.namespace, spec.service, access.principal);
    const now = this.clock.now();
    const change = await this.store.put(spec, now, { ttlMs: ttl ?? 0 }, guard); // 0: persistent, no lease
    const instance = change?.instance ?? this.store.get(spec);
    if (instance === undefined) {
      throw new RegistryError(Reason.UNAVAILABLE, "instance: removed concurrently with its registration, retry");
    }
    const revision = change?.revision ?? this.store.revision();
    if (ttl === undefined) {
      // persistent: whatever lease it had (an earlier registration without a check) ends here
      this.leases.delete(spec);
      return { instance, ttlMs: undefined, expiresAt: undefined, revision };
    }
    const lease = this.leases.renew(spec, ttl, this.clock.now());
    this.arm();
    return { instance, ttlMs: ttl, expiresAt: lease.deadline, revision };
  }

  /**
   * recordCheck stores what an instance's check concluded (the checker
   * calls it on a change of status or reason): an UPDATED event when it
   * differs from the stored result. It does nothing when the instance is
   * gone or its check is no longer check (changed meanwhile). The checker
   * is the server itself, so no permission applies.
   */
  async recordCheck(k: InstanceKey, check: CheckSpec, result: CheckResult): Promise<Change | undefined> {
    this.assertOpen();
    const record = this.store.get(k);
    if (record?.health === undefined || !sameCheck(record.health.check, check)) return undefined;
    const change = await this.store.put({ ...record, operatorStatus: undefined, health: { check, result } }, this.clock.now());
    if (change !== undefined) {
      this.log.info({ instance: keyString(k), check: result.status, reason: result.message, revision: change.revision }, "health check result");
    }
    return change;
  }

  /**
   * removeFailedCheck removes an instance whose check has failed for its
   * deregister-after (REMOVAL_REASON_CHECK_FAILED), unless it changed since
   * the checker read it (modRevision).
   */
  async removeFailedCheck(k: InstanceKey, modRevision: number): Promise<Change | undefined> {
    this.assertOpen();
    const change = await this.store.remove(k, "CHECK_FAILED", modRevision);
    if (change !== undefined) {
      this.leases.delete(k);
      this.log.info({ instance: keyString(k), reason: "CHECK_FAILED", revision: change.revision }, "instance removed");
    }
    return change;
  }

  /** checkQuotas refuses a new instance of namespace/service for principal that a quota does not leave room for. */
  private checkQuotas(namespace: string, service: string, principal: string): void {
    const q = this.quotas;
    const view = this.store.service(namespace, service);
    const exhausted = (what: string): RegistryError => new RegistryError(Reason.RESOURCE_EXHAUSTED, `instance: ${what}`);
    if (view !== undefined && view.size >= this.limits.maxInstancesPerService) {
      throw exhausted(`service ${namespace}/${service} already holds the maximum of ${this.limits.maxInstancesPerService} instances (MAXINE_MAX_INSTANCES_PER_SERVICE)`);
    }
    if (this.usage.instances >= q.maxInstances) throw exhausted(`the registry holds the maximum of ${q.maxInstances} instances (MAXINE_MAX_INSTANCES)`);
    if (this.usage.ownedBy(principal) >= q.maxInstancesPerPrincipal) {
      throw exhausted(`principal ${JSON.stringify(principal)} owns the maximum of ${q.maxInstancesPerPrincipal} instances (MAXINE_MAX_INSTANCES_PER_PRINCIPAL)`);
    }
    if (view === undefined || view.size === 0) {
      if (this.usage.services >= q.maxServices) throw exhausted(`the registry holds the maximum of ${q.maxServices} services (MAXINE_MAX_SERVICES)`);
      const namespaces = this.store.namespaces();
      if (!namespaces.includes(namespace) && namespaces.length >= q.maxNamespaces) {
        throw exhausted(`the registry holds the maximum of ${q.maxNamespaces} namespaces (MAXINE_MAX_NAMESPACES)`);
      }
    }
  }

  /** deregister removes an instance at once: the caller's own, or any with admin. */
  async deregister(k: InstanceKey | undefined, access: Access = OPEN): Promise<number> {
    this.assertOpen();
    try {
      const revision = await this.deregisterInstance(k, access);
      this.audit("Deregister", access, keyString(k!), "ok", revision);
      return revision;
    } catch (err) {
      this.audit("Deregister", access, k === undefined ? "" : keyString(k), err);
      throw err;
    }
  }

  private async deregisterInstance(k: InstanceKey | undefined, access: Access): Promise<number> {
    const key = keyOf("key", k);
    requirePermission(access, "register", key.namespace, key.service);
    const existing = this.store.get(key);
    const admin = access.allows("admin", key.namespace, key.service);
    if (existing !== undefined && existing.owner !== access.principal && !admin) throw notOwner(access, keyString(key), existing.owner);
    const change = await this.store.remove(key, "DEREGISTERED", undefined, admin ? undefined : access.principal);
    this.leases.delete(key);
    if (change === undefined) {
      throw new RegistryError(
        Reason.NOT_FOUND,
        `key: instance ${key.instanceId} of service ${key.namespace}/${key.service} is not registered`,
      );
    }
    return change.revision;
  }

  /**
   * setOperatorStatus sets (or, with "NONE", clears) an operator's override
   * of an instance's status: stored with the instance, it outlives the
   * owner's beats and re-registrations. It needs admin on the service:
   * owning the instance is not enough, as the override exists to overrule
   * the instance's own reports.
   */
  async setOperatorStatus(k: InstanceKey | undefined, status: OperatorStatus, access: Access = OPEN): Promise<{ instance: InstanceRecord; revision: number }> {
    this.assertOpen();
    const what = `SetOperatorStatus ${status}`;
    try {
      const key = keyOf("key", k);
      requirePermission(access, "admin", key.namespace, key.service);
      const existing = this.store.get(key);
      const absent = (): RegistryError =>
        new RegistryError(Reason.NOT_FOUND, `key: instance ${key.instanceId} of service ${key.namespace}/${key.service} is not registered`);
      if (existing === undefined) throw absent();
      const change = await this.store.put({ ...existing, operatorStatus: status, health: keptHealth(existing) }, this.clock.now());
      const instance = change?.instance ?? this.store.get(key);
      if (instance === undefined) throw absent();
      const revision = change?.revision ?? this.store.revision();
      this.audit(what, access, keyString(key), "ok", revision);
      return { instance, revision };
    } catch (err) {
      this.audit(what, access, k === undefined ? "" : keyString(k), err);
      throw err;
    }
  }

  /** openStream starts a heartbeat stream; closeStream must follow. */
  openStream(access: Access = OPEN): HeartbeatStream {
    this.assertOpen();
    if (this.streams.size >= this.lease.maxHeartbeatStreams) {
      throw new RegistryError(
        Reason.RESOURCE_EXHAUSTED,
        `heartbeat: the server holds the maximum of ${this.lease.maxHeartbeatStreams} heartbeat streams (MAXINE_MAX_HEARTBEAT_STREAMS)`,
      );
    }
    const stream = new HeartbeatStream(this.nextStreamId++, access);
    this.streams.add(stream);
    this.counts.heartbeatStreamsOpened++;
    return stream;
  }

  /**
   * closeStream ends a heartbeat stream: its instances start their grace
   * period (MAXINE_GRACE, or graceMs: 0 for a peer the server found silent)
   * and go when it passes, unless another stream claims them first.
   */
  closeStream(stream: HeartbeatStream, graceMs = this.lease.graceMs): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream);
    this.release(stream, graceMs);
    this.arm();
  }

  /** release ends stream's hold on its leases (it is closed): each passes to another open stream that beat it, or starts its grace. */
  private release(stream: HeartbeatStream, graceMs = this.lease.graceMs): void {
    const { released, moved } = this.leases.release(stream, this.clock.now(), graceMs);
    if (released.length > 0) this.store.leases?.released(released, graceMs, stream.id);
    for (const lease of moved) this.store.leases?.renewed(lease.id, lease.ttlMs, lease.stream!.id);
  }

  /**
   * heartbeat renews the leases of beats, binds them to stream, and applies
   * status changes. It answers synchronously unless a beat changes its
   * instance's status (a store write), or names a lease of a shared store
   * that this server has not seen (a session that failed over: the
   * registered TTLs are read first, once per request): beats are the
   * registry's most frequent call, and an answer written in the same turn
   * as its request leaves with the same network write.
   */
  heartbeat(stream: HeartbeatStream, beats: readonly BeatInput[]): BeatOutcome[] | Promise<BeatOutcome[]> {
    this.assertOpen();
    this.counts.heartbeatMessages++;
    return this.beatsFrom(stream, beats, 0, []);
  }

  /**
   * beatsFrom applies beats[i..] in order, synchronously up to the first
   * status change, or (shared store) the first beat for a lease this server
   * has not seen: its TTL, and that of the later ones, is read from the
   * store first (ttls), once per request.
   */
  private beatsFrom(
    stream: HeartbeatStream,
    beats: readonly BeatInput[],
    i: number,
    out: BeatOutcome[],
    ttls?: ReadonlyMap<string, number>,
  ): BeatOutcome[] | Promise<BeatOutcome[]> {
    for (; i < beats.length; i++) {
      const beat = beats[i]!;
      let key: InstanceKey;
      try {
        key = keyOf(`beats[${i}].key`, beat.key);
        if (beat.load !== undefined && !(beat.load >= 0 && Number.isFinite(beat.load))) {
          throw invalid(`beats[${i}].load`, `must be a finite number >= 0, got ${beat.load}`);
        }
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        out.push({ key: beat.key, result: "INVALID", message: err.message });
        continue;
      }
      const access = stream.access;
      if (!access.allows("register", key.namespace, key.service)) {
        const refusal = denied(access, "register", `${key.namespace}/${key.service}`);
        this.audit("Heartbeat", access, keyString(key), refusal);
        out.push({ key, result: "PERMISSION_DENIED", message: refusal.message });
        continue;
      }
      const record = this.store.get(key);
      if (record !== undefined && record.owner !== access.principal && !access.allows("admin", key.namespace, key.service)) {
        const refusal = notOwner(access, keyString(key), record.owner);
        this.audit("Heartbeat", access, keyString(key), refusal);
        out.push({ key, result: "PERMISSION_DENIED", message: refusal.message });
        continue;
      }
      if (record === undefined && beat.register !== undefined) {
        const next = i + 1;
        return this.registerFromBeat(stream, key, beat, `beats[${i}].instance`).then((outcome) => {
          out.push(outcome);
          return this.beatsFrom(stream, beats, next, out, ttls);
        });
      }
      if (record === undefined) {
        this.leases.delete(key);
        this.counts.beatsUnknown++;
        out.push({ key, result: "UNKNOWN", message: `instance ${key.instanceId} of service ${key.namespace}/${key.service} is not registered` });
        continue;
      }
      const shared = this.store.leases;
      if (ttls === undefined && shared !== undefined && this.leases.get(keyString(key)) === undefined) {
        // a lease registered on another replica (or before a restart): renewed for its registered TTL, not the default
        return shared.ttls(this.unseenLeases(beats, i)).then((found) => this.beatsFrom(stream, beats, i, out, found));
      }
      if (beat.status !== undefined && beat.status !== record.status) {
        const next = i + 1;
        return this.changeStatus(record, beat.status, access).then(() => {
          out.push(this.renew(stream, key, beat, ttls));
          return this.beatsFrom(stream, beats, next, out, ttls);
        });
      }
      out.push(this.renew(stream, key, beat, ttls));
    }
    this.arm();
    return out;
  }

  /**
   * registerFromBeat registers the instance a beat carries for a key the
   * registry does not hold (as Register would, limits included) and binds
   * it to stream. When that fails the beat is answered UNKNOWN with the
   * reason: the client then calls Register, which reports the error.
   */
  private async registerFromBeat(stream: HeartbeatStream, key: InstanceKey, beat: BeatInput, field: string): Promise<BeatOutcome> {
    const { instance, ttlMs } = beat.register!;
    const unknown = (why: string): BeatOutcome => {
      this.counts.beatsUnknown++;
      return { key, result: "UNKNOWN", message: `instance ${key.instanceId} of service ${key.namespace}/${key.service} is not registered; ${why}` };
    };
    try {
      const spec = specOf(instance, this.limits, stream.access.principal);
      if (spec.namespace !== key.namespace || spec.service !== key.service || spec.instanceId !== key.instanceId) {
        return unknown(`${field} must name the same instance as the beat's key, got ${spec.namespace}/${spec.service}/${spec.instanceId}`);
      }
      await this.registerInstance(instance, ttlMs, stream.access);
    } catch (err) {
      if (!(err instanceof RegistryError)) throw err;
      return unknown(`registering it from ${field} failed: ${err.message}`);
    }
    this.counts.beatsRegistered++;
    return { key, result: "REGISTERED", expiresAt: this.renew(stream, key, beat).expiresAt };
  }

  /** changeStatus stores a status a beat reported; with the store unreachable, a later beat (clients send it on each) applies it. */
  private async changeStatus(record: InstanceRecord, status: Status, access: Access): Promise<void> {
    try {
      // operatorStatus unset: the store keeps the stored override (a beat never clears an operator's drain)
      const change = await this.store.put({ ...record, status, operatorStatus: undefined, health: keptHealth(record) }, this.clock.now(), undefined, access.principal === record.owner ? record.owner : undefined);
      this.audit(`Heartbeat status ${status}`, access, keyString(record), "ok", change?.revision);
    } catch (err) {
      this.audit(`Heartbeat status ${status}`, access, keyString(record), err);
      if (!(err instanceof RegistryError && err.reason === Reason.UNAVAILABLE)) throw err;
      this.log.warn({ instance: keyString(record), err: err.message }, "status change not stored, retried on the next beat");
    }
  }

  /** unseenLeases lists the keys of beats[i..] that name a registered instance this server holds no lease of. */
  private unseenLeases(beats: readonly BeatInput[], i: number): string[] {
    const keys: string[] = [];
    for (; i < beats.length; i++) {
      const k = beats[i]!.key;
      if (k === undefined) continue;
      let key: InstanceKey;
      try {
        key = keyOf("key", k);
      } catch {
        continue; // answered INVALID in its turn
      }
      const id = keyString(key);
      if (this.leases.get(id) === undefined && this.store.get(key) !== undefined) keys.push(id);
    }
    return keys;
  }

  /**
   * renew extends the lease of a registered instance's beat and binds it to
   * stream. A lease this server has not seen starts with the TTL its
   * instance was registered with (ttls, from a shared store), else the
   * default.
   */
  private renew(stream: HeartbeatStream, key: InstanceKey, beat: BeatInput, ttls?: ReadonlyMap<string, number>): { key: InstanceKey; result: "RENEWED"; expiresAt: number } {
    const ttl = ttls?.get(keyString(key)) ?? this.lease.defaultTtlMs;
    const lease = this.leases.extend(key, ttl, this.clock.now());
    if (beat.load !== undefined) lease.load = beat.load;
    if (!stream.closed) {
      this.leases.bind(lease, stream);
      // the shared store hears of the stream that holds the lease, which need not be this one (LeaseTable.bind)
      this.store.leases?.renewed(lease.id, lease.ttlMs, (lease.stream ?? stream).id);
    }
    this.counts.beatsRenewed++;
    return { key, result: "RENEWED", expiresAt: lease.deadline };
  }

  /** discover chooses one SERVING instance of a service. */
  discover(q: DiscoverQuery, access: Access = OPEN): Discovered {
    const namespace = namespaceOf("namespace", q.namespace);
    const service = serviceOf("service", q.service);
    requirePermission(access, "read", namespace, service);
    const filter = filterOf("filter", q.filter, this.limits);
    hashKeyOf(q.strategy, q.hashKey);
    textOf("preferred_zone", q.preferredZone);
    const view = this.store.service(namespace, service);
    if (view === undefined) {
      throw new RegistryError(Reason.NOT_FOUND, `service ${namespace}/${service} has no instances`);
    }
    const unfiltered = isEmptyFilter(filter);
    const all = unfiltered ? view.sorted() : view.sorted().filter((r) => matches(filter, r));
    // a Discover without a filter (most of them) takes the view's cached list: nothing is built per call
    let candidates = unfiltered ? view.serving() : all.filter((r) => effectiveStatus(r) === "SERVING");
    if (q.preferredZone !== "") {
      const inZone = candidates.filter((r) => r.zone === q.preferredZone);
      if (inZone.length > 0) candidates = inZone;
    }
    // include_all lists what matches even when nothing is SERVING (a fully drained service): an operator's listing
    if (candidates.length === 0 && !(q.includeAll && all.length > 0)) {
      throw new RegistryError(
        Reason.NOT_FOUND,
        `service ${namespace}/${service} has no SERVING instance matching the filter (${view.size} registered, ${all.length} matching, none serving)`,
      );
    }
    const chosen = candidates.length === 0 ? undefined : this.selector.select(view, candidates, q.strategy, q.hashKey, this.loadOfRecord);
    if (!q.includeAll) return { chosen, all: NONE, leases: NONE, revision: this.store.revision() };
    return { chosen, all, leases: all.map((r) => this.leaseStateOf(r)), revision: this.store.revision() };
  }

  /**
   * leaseStateOf is what this server knows of r's lease now: its load and
   * when it goes (the lease deadline or, its stream ended, the end of the
   * grace). With a shared store (Redis) another replica may renew the lease
   * and its Redis deadline is not read here, so only a lease bound to an
   * open heartbeat stream of this server is known (its beats come here).
   */
  private leaseStateOf(r: InstanceRecord): LeaseState {
    const lease = this.leases.get(keyString(r));
    if (lease === undefined) return UNKNOWN_LEASE;
    if (this.store.leases !== undefined && (lease.stream === undefined || lease.stream.closed)) return UNKNOWN_LEASE;
    return { load: lease.load, expiresAt: Math.min(lease.deadline, lease.graceUntil) };
  }

  /** listServices summarises the services of a namespace the caller may read, in name order. */
  listServices(ns: string, access: Access = OPEN): ServiceCount[] {
    const namespace = namespaceOf("namespace", ns);
    const all = access.allowsAll("read", namespace);
    const services = this.store.services(namespace);
    return (all ? services : services.filter(([service]) => access.allows("read", namespace, service))).map(([service, view]) => ({
      service,
      instanceCount: view.size,
      servingCount: view.servingCount,
    }));
  }

  /**
   * close refuses further calls, stops expiry and ends every open heartbeat
   * stream's hold, as closeStream would, at once: a shared store (Redis)
   * hears of the releases now, before the transport has ended the calls
   * and before its owner closes it, so the instances bound to this
   * server's streams go after the grace (or stay, bound to another
   * replica's stream) rather than after their TTL. The calls' own
   * closeStream then finds their streams closed. The store is closed by
   * its owner.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.expiry.cancel();
    const open = [...this.streams];
    this.streams.clear();
    // all closed first: none takes over another's leases on its way out
    for (const stream of open) stream.closed = true;
    for (const stream of open) this.release(stream);
  }

  /** loadOfRecord is the load an instance last reported here (LEAST_LOADED); one function for every Discover. */
  private readonly loadOfRecord = (r: InstanceRecord): number => this.leases.get(keyString(r))?.load ?? 0;

  private ttlOf(ttlMs: number | undefined): number {
    if (ttlMs === undefined) return this.lease.defaultTtlMs;
    const { minTtlMs, maxTtlMs } = this.lease;
    if (!(ttlMs >= minTtlMs && ttlMs <= maxTtlMs)) {
      throw invalid("lease_ttl", `must be ${minTtlMs / 1000}s..${maxTtlMs / 1000}s (MAXINE_LEASE_TTL_MIN..MAXINE_LEASE_TTL_MAX), got ${ttlMs / 1000}s`);
    }
    return ttlMs;
  }

  private assertOpen(): void {
    if (this.closed) throw new RegistryError(Reason.SHUTTING_DOWN, "server: shutting down, retry on another server");
  }

  /** arm keeps one timer set for the earliest lease deadline. */
  private arm(): void {
    if (!this.closed) this.expiry.arm(this.leases.nextDue());
  }

  private async expire(): Promise<void> {
    for (const { key, reason } of this.leases.expireDue(this.clock.now())) {
      // A shared store expires leases itself (another replica may have renewed this one).
      if (this.store.leases !== undefined) continue;
      try {
        const change = await this.store.remove(key, reason);
        if (change !== undefined) this.log.info({ instance: keyString(key), reason, revision: change.revision }, "instance removed");
      } catch (err) {
        this.log.error({ err, instance: keyString(key) }, "removing an expired instance failed");
      }
    }
    this.arm();
  }
}

/** NONE is the empty list of a Discover answer without include_all (shared: the common answer allocates no lists). */
const NONE: readonly never[] = Object.freeze([]);

/** inputKey names the instance a Register asked for, for the audit log, before (or whether or not) it validated: clipped, so hostile input cannot flood the log. */
function inputKey(input: InstanceInput | undefined): string {
  if (input === undefined) return "";
  const clip = (v: string) => (v.length > 128 ? `${v.slice(0, 128)}...` : v);
  return `${clip(input.namespace || "default")}/${clip(input.service)}/${clip(input.instanceId)}`;
}

/** keptHealth is r's check without its result, for a put that must keep whatever result is stored when it commits (a checker may write one meanwhile). */
function keptHealth(r: InstanceRecord): HealthSpec | undefined {
  return r.health === undefined ? undefined : { check: r.health.check };
}
