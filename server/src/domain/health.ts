import type { Status } from "./instance.js";

/** CheckKind is what an active check probes with. */
export type CheckKind = "HTTP" | "TCP" | "GRPC";

/**
 * CheckSpec is an instance's active health check (HealthCheck on the wire),
 * validated and with its defaults applied. It is part of what a client
 * sets: a change of check is a change of the instance.
 */
export interface CheckSpec {
  readonly kind: CheckKind;
  /** port to probe; 0 means the instance's port (it follows the instance). */
  readonly port: number;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  /** deregisterAfterMs removes an instance whose probes have failed this long in a row; 0: never. */
  readonly deregisterAfterMs: number;
  /** httpPath, httpMethod and the expected status range are set for HTTP checks ("" and 0 otherwise). */
  readonly httpPath: string;
  readonly httpMethod: string;
  readonly statusMin: number;
  readonly statusMax: number;
  /** grpcService is the service name a gRPC check asks grpc.health.v1 about ("" for the server). */
  readonly grpcService: string;
}

/** CheckStatus is the state of a check: PENDING until it first passes. */
export type CheckStatus = "PENDING" | "PASSING" | "FAILING";

/**
 * CheckResult is what the registry's check last concluded: revisioned with
 * the instance, so it changes only when the status changes or a failing
 * check gives another reason (never on every probe).
 */
export interface CheckResult {
  readonly status: CheckStatus;
  /** message is the readable probe result behind status ("HTTP 503 from /healthz"). */
  readonly message: string;
  /** changedAt is when status last changed (ms since the epoch). */
  readonly changedAt: number;
}

/**
 * HealthSpec is an instance's check as a spec carries it. A spec given to
 * Store.put without result keeps the stored result when the check is the
 * same (so a re-registration does not reset a passing check), and starts
 * PENDING otherwise (resolveHealth).
 */
export interface HealthSpec {
  readonly check: CheckSpec;
  readonly result?: CheckResult | undefined;
}

/** Health is a stored instance's check and its result: one slot of the record. */
export interface Health extends HealthSpec {
  readonly result: CheckResult;
}

/** sameCheck reports whether two checks probe the same way. */
export function sameCheck(a: CheckSpec, b: CheckSpec): boolean {
  return (
    a.kind === b.kind &&
    a.port === b.port &&
    a.intervalMs === b.intervalMs &&
    a.timeoutMs === b.timeoutMs &&
    a.healthyThreshold === b.healthyThreshold &&
    a.unhealthyThreshold === b.unhealthyThreshold &&
    a.deregisterAfterMs === b.deregisterAfterMs &&
    a.httpPath === b.httpPath &&
    a.httpMethod === b.httpMethod &&
    a.statusMin === b.statusMin &&
    a.statusMax === b.statusMax &&
    a.grpcService === b.grpcService
  );
}

/** sameHealth reports whether two instances' checks and results are equal (no change to store). */
export function sameHealth(a: HealthSpec | undefined, b: HealthSpec | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (!sameCheck(a.check, b.check)) return false;
  const x = a.result;
  const y = b.result;
  if (x === undefined || y === undefined) return x === y;
  return x.status === y.status && x.message === y.message && x.changedAt === y.changedAt;
}

/**
 * resolveHealth is the health a put stores: the spec's result when it has
 * one; without one, the previous result while the check is the same, else
 * a new PENDING result at now. Every store applies it in its write.
 */
export function resolveHealth(spec: HealthSpec | undefined, previous: Health | undefined, now: number): Health | undefined {
  if (spec === undefined) return undefined;
  if (spec.result !== undefined) return spec as Health;
  if (previous !== undefined && sameCheck(previous.check, spec.check)) return { check: spec.check, result: previous.result };
  return { check: spec.check, result: { status: "PENDING", message: "", changedAt: now } };
}

/** checkServingStatus is the status a check's result allows: SERVING only while PASSING. */
export function checkServingStatus(h: HealthSpec | undefined): Status {
  if (h === undefined) return "SERVING";
  return h.result?.status === "PASSING" ? "SERVING" : "NOT_SERVING";
}

const RANK: Record<Status, number> = { SERVING: 0, DRAINING: 1, NOT_SERVING: 2 };

/** worseStatus is the worse of two statuses: NOT_SERVING over DRAINING over SERVING. */
export function worseStatus(a: Status, b: Status): Status {
  return RANK[a] >= RANK[b] ? a : b;
}

/**
 * CheckTargets decides where the registry's probes may go (checks/targets.ts
 * holds the allow-list): vet resolves an instance's host and rejects, with
 * an INVALID_ARGUMENT naming the rule and the setting, a target a probe
 * must not reach. Register calls it before storing a check.
 */
export interface CheckTargets {
  vet(host: string, port: number): Promise<void>;
}

/** checkPort is the port a check probes: its own, or the instance's. */
export function checkPort(check: CheckSpec, instancePort: number): number {
  return check.port === 0 ? instancePort : check.port;
}
