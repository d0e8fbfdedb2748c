import { invalid } from "../domain/errors.js";
import type { CheckKind, CheckSpec } from "../domain/health.js";
import { textOf } from "./validate.js";

/** CheckInput is a HealthCheck as a client sent it, before validation (durations in ms, undefined when unset). */
export interface CheckInput {
  /** kinds lists the probe kinds set (http, tcp, grpc): exactly one is valid. */
  readonly kinds: readonly CheckKind[];
  readonly port: number;
  readonly intervalMs: number | undefined;
  readonly timeoutMs: number | undefined;
  readonly healthyThreshold: number;
  readonly unhealthyThreshold: number;
  readonly deregisterAfterMs: number | undefined;
  readonly httpPath: string;
  readonly httpMethod: string;
  readonly statusMin: number;
  readonly statusMax: number;
  readonly grpcService: string;
}

/** CheckBounds are the server's bounds on check intervals (MAXINE_CHECK_INTERVAL_MIN, MAXINE_CHECK_INTERVAL_MAX). */
export interface CheckBounds {
  readonly intervalMinMs: number;
  readonly intervalMaxMs: number;
}

/** DEFAULT_CHECK_BOUNDS are the bounds of a server started with no settings. */
export const DEFAULT_CHECK_BOUNDS: CheckBounds = { intervalMinMs: 1_000, intervalMaxMs: 3_600_000 };

/** CHECK_DEFAULTS are the values of a HealthCheck's unset fields (documented in registry.proto). */
export const CHECK_DEFAULTS = { intervalMs: 10_000, timeoutMs: 2_000, healthyThreshold: 1, unhealthyThreshold: 3 } as const;

/** MIN_TIMEOUT_MS is the shortest probe timeout: below it a loaded registry fails healthy targets. */
const MIN_TIMEOUT_MS = 100;
const MAX_THRESHOLD = 100;
const METHODS = ["GET", "HEAD", "POST"];
const PATH = /^\/[\x21-\x7e]{0,1023}$/;

/**
 * checkOf validates a client's HealthCheck and applies its defaults; field
 * names the check in errors ("instance.health_check"). Each error names
 * the field and the rule, and the setting for a bound the server sets.
 */
export function checkOf(field: string, c: CheckInput, bounds: CheckBounds): CheckSpec {
  if (c.kinds.length !== 1) {
    throw invalid(field, `must set exactly one of http, tcp and grpc, got ${c.kinds.length === 0 ? "none" : c.kinds.map((k) => k.toLowerCase()).join(" and ")}`);
  }
  const kind = c.kinds[0]!;
  if (!Number.isInteger(c.port) || c.port < 0 || c.port > 65535) throw invalid(`${field}.port`, `must be 0..65535 (0: the instance's port), got ${c.port}`);
  const intervalMs = c.intervalMs ?? CHECK_DEFAULTS.intervalMs;
  if (!(intervalMs >= bounds.intervalMinMs && intervalMs <= bounds.intervalMaxMs)) {
    throw invalid(
      `${field}.interval`,
      `must be ${seconds(bounds.intervalMinMs)}..${seconds(bounds.intervalMaxMs)} (MAXINE_CHECK_INTERVAL_MIN..MAXINE_CHECK_INTERVAL_MAX), got ${seconds(intervalMs)}`,
    );
  }
  const timeoutMs = c.timeoutMs ?? Math.min(CHECK_DEFAULTS.timeoutMs, intervalMs);
  if (!(timeoutMs >= MIN_TIMEOUT_MS && timeoutMs <= intervalMs)) {
    throw invalid(`${field}.timeout`, `must be ${seconds(MIN_TIMEOUT_MS)}..the interval (${seconds(intervalMs)}), got ${seconds(timeoutMs)}`);
  }
  const threshold = (name: string, v: number, def: number): number => {
    if (!Number.isInteger(v) || v < 0 || v > MAX_THRESHOLD) throw invalid(`${field}.${name}`, `must be 1..${MAX_THRESHOLD} (0: ${def}), got ${v}`);
    return v === 0 ? def : v;
  };
  const deregisterAfterMs = c.deregisterAfterMs ?? 0;
  if (deregisterAfterMs !== 0 && deregisterAfterMs < intervalMs) {
    throw invalid(`${field}.deregister_after`, `must be 0 (never) or at least the interval (${seconds(intervalMs)}), got ${seconds(deregisterAfterMs)}`);
  }
  const spec = {
    kind,
    port: c.port,
    intervalMs,
    timeoutMs,
    healthyThreshold: threshold("healthy_threshold", c.healthyThreshold, CHECK_DEFAULTS.healthyThreshold),
    unhealthyThreshold: threshold("unhealthy_threshold", c.unhealthyThreshold, CHECK_DEFAULTS.unhealthyThreshold),
    deregisterAfterMs,
    httpPath: "",
    httpMethod: "",
    statusMin: 0,
    statusMax: 0,
    grpcService: "",
  };
  if (kind === "GRPC") return { ...spec, grpcService: textOf(`${field}.grpc.service`, c.grpcService) };
  if (kind === "TCP") return spec;
  const path = c.httpPath === "" ? "/" : c.httpPath;
  if (!PATH.test(path)) throw invalid(`${field}.http.path`, `must start with '/' and hold 1..1024 printable ASCII characters with no spaces, got ${JSON.stringify(path.slice(0, 64))}`);
  const method = c.httpMethod === "" ? "GET" : c.httpMethod;
  if (!METHODS.includes(method)) throw invalid(`${field}.http.method`, `must be one of ${METHODS.join(", ")} (empty: GET), got ${JSON.stringify(method.slice(0, 16))}`);
  let { statusMin, statusMax } = c;
  if (statusMin === 0 && statusMax === 0) [statusMin, statusMax] = [200, 399];
  if (!(Number.isInteger(statusMin) && Number.isInteger(statusMax) && statusMin >= 100 && statusMax <= 599 && statusMin <= statusMax)) {
    throw invalid(`${field}.http.expected_status_min`, `and expected_status_max must make a range within 100..599 (both 0: 200..399), got ${statusMin}..${statusMax}`);
  }
  return { ...spec, httpPath: path, httpMethod: method, statusMin, statusMax };
}

function seconds(ms: number): string {
  return `${ms / 1000}s`;
}
