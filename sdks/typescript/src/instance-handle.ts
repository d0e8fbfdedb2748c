import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { OperatorStatus, ServingStatus, type Instance } from "./gen/maxine/registry/v1/registry_pb.js";

/** InstanceKeyOf names one instance: the fields Heartbeat and Deregister need. */
export interface InstanceKeyOf {
  readonly namespace: string;
  readonly service: string;
  readonly instanceId: string;
}

/** keyString is the map key of an instance key. */
export function keyString(k: InstanceKeyOf): string {
  return `${k.namespace}/${k.service}/${k.instanceId}`;
}

/** HandleOwner is what an InstanceHandle asks of its Session. */
export interface HandleOwner {
  /** beatNow sends a beat for handle and resolves when the server renewed it. */
  beatNow(handle: InstanceHandle): Promise<void>;
  /** release stops heartbeating handle and deregisters it. */
  release(handle: InstanceHandle): Promise<void>;
}

/**
 * InstanceHandle is one instance a Session keeps alive. It is returned by
 * Session.register and stays valid until deregister or Session.close; its
 * status and load ride on the session's heartbeats.
 */
export class InstanceHandle {
  /** key names the instance as the server stored it (server-assigned instanceId included). */
  readonly key: InstanceKeyOf;
  private current: Instance;
  private wantedStatus: ServingStatus;
  private reportedLoad: number | undefined;
  private expiresAt: Timestamp | undefined;
  private live = true;

  /** @internal Session.register builds handles. */
  constructor(
    private readonly owner: HandleOwner,
    instance: Instance,
    /** ttlMs is the lease TTL the server granted. */
    public ttlMs: number,
    /** requestedTtlMs is what register asked for (undefined: the server's default), reused on re-registration. */
    readonly requestedTtlMs: number | undefined,
    /** requestedStatus is the status register asked for: the one to report while an operator's override masks the stored status. */
    requestedStatus?: ServingStatus,
  ) {
    this.key = { namespace: instance.namespace, service: instance.service, instanceId: instance.instanceId };
    this.current = instance;
    // Under an operator's override (maxine drain) the answer's status is the override's, not this process's: beats report what it asked for.
    const status = instance.operatorStatus !== OperatorStatus.UNSPECIFIED ? (requestedStatus ?? ServingStatus.UNSPECIFIED) : instance.status;
    this.wantedStatus = status === ServingStatus.UNSPECIFIED ? ServingStatus.SERVING : status;
  }

  /** instance is the instance as the server last returned it from Register. */
  get instance(): Instance {
    return this.current;
  }

  /** status is the status this handle asks for; every heartbeat carries it. */
  get status(): ServingStatus {
    return this.wantedStatus;
  }

  /** load is the load reported with each heartbeat, or undefined when never set. */
  get load(): number | undefined {
    return this.reportedLoad;
  }

  /** leaseExpiresAt is the lease deadline from the last renewal, or undefined before the first. */
  get leaseExpiresAt(): Date | undefined {
    return this.expiresAt === undefined ? undefined : timestampDate(this.expiresAt);
  }

  /** registered is false once the handle was deregistered or its session closed. */
  get registered(): boolean {
    return this.live;
  }

  /**
   * setStatus changes the instance's status with a heartbeat sent at once,
   * and resolves when the server applied it (an UPDATED watch event follows
   * when the status really changed).
   */
  setStatus(status: ServingStatus): Promise<void> {
    this.assertLive();
    if (status === ServingStatus.UNSPECIFIED || ServingStatus[status] === undefined) {
      throw new RangeError(`setStatus: status must be SERVING, NOT_SERVING or DRAINING, got ${status}`);
    }
    this.wantedStatus = status;
    return this.owner.beatNow(this);
  }

  /** drain sets status DRAINING: the instance stays registered but is no longer picked. */
  drain(): Promise<void> {
    return this.setStatus(ServingStatus.DRAINING);
  }

  /** setLoad reports the instance's load (finite, >= 0, lower is less loaded) with the next heartbeat. */
  setLoad(load: number): void {
    this.assertLive();
    if (!(Number.isFinite(load) && load >= 0)) throw new RangeError(`setLoad: load must be a finite number >= 0, got ${load}`);
    this.reportedLoad = load;
  }

  /** deregister removes the instance from the registry at once and stops its heartbeats. */
  deregister(): Promise<void> {
    if (!this.live) return Promise.resolve();
    return this.owner.release(this);
  }

  /** @internal */
  update(instance: Instance, ttlMs: number): void {
    this.current = instance;
    this.ttlMs = ttlMs;
  }

  /** @internal */
  renewed(expiresAt: Timestamp | undefined): void {
    this.expiresAt = expiresAt;
  }

  /** @internal */
  retire(): void {
    this.live = false;
  }

  private assertLive(): void {
    if (!this.live) throw new Error(`instance ${keyString(this.key)}: deregistered`);
  }
}
