import type { ConfigWrite } from "../domain/config-entry.js";
import type { CheckResult, CheckSpec, HealthSpec } from "../domain/health.js";
import type { InstanceKey, InstanceSpec } from "../domain/instance.js";

// The checks the primary's authority makes of what a worker's store sends
// (cluster/registry-authority.ts): a worker is Maxine's own code, but a
// fault in one must not put a malformed record into every worker's view,
// nor throw in the primary. The values were validated by the worker's
// registry already; these check their shape only.

/** MalformedMessage is a worker's store message the authority refuses; its message names the field. */
export class MalformedMessage extends Error {
  override readonly name = "MalformedMessage";
}

type Fields = Record<string, unknown>;

function object(v: unknown, field: string): Fields {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new MalformedMessage(`${field}: must be an object`);
  return v as Fields;
}

function str(o: Fields, field: string, path: string): string {
  const v = o[field];
  if (typeof v !== "string") throw new MalformedMessage(`${path}.${field}: must be a string`);
  return v;
}

function num(o: Fields, field: string, path: string): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isFinite(v)) throw new MalformedMessage(`${path}.${field}: must be a finite number`);
  return v;
}

function oneOf<T extends string>(o: Fields, field: string, path: string, values: readonly T[]): T {
  const v = o[field];
  if (!values.includes(v as T)) throw new MalformedMessage(`${path}.${field}: must be one of ${values.join(", ")}`);
  return v as T;
}

/** instanceKeyOf checks an instance key: three strings without '/'. */
export function instanceKeyOf(v: unknown, path = "key"): InstanceKey {
  const o = object(v, path);
  const key = { namespace: str(o, "namespace", path), service: str(o, "service", path), instanceId: str(o, "instanceId", path) };
  if (key.namespace === "" || key.service === "" || key.instanceId === "" || `${key.namespace}${key.service}${key.instanceId}`.includes("/")) {
    throw new MalformedMessage(`${path}: namespace, service and instanceId must be non-empty and free of '/'`);
  }
  return key;
}

function checkOf(v: unknown, path: string): CheckSpec {
  const o = object(v, path);
  return {
    kind: oneOf(o, "kind", path, ["HTTP", "TCP", "GRPC"] as const),
    port: num(o, "port", path),
    intervalMs: num(o, "intervalMs", path),
    timeoutMs: num(o, "timeoutMs", path),
    healthyThreshold: num(o, "healthyThreshold", path),
    unhealthyThreshold: num(o, "unhealthyThreshold", path),
    deregisterAfterMs: num(o, "deregisterAfterMs", path),
    httpPath: str(o, "httpPath", path),
    httpMethod: str(o, "httpMethod", path),
    statusMin: num(o, "statusMin", path),
    statusMax: num(o, "statusMax", path),
    grpcService: str(o, "grpcService", path),
  };
}

function resultOf(v: unknown, path: string): CheckResult {
  const o = object(v, path);
  return { status: oneOf(o, "status", path, ["PENDING", "PASSING", "FAILING"] as const), message: str(o, "message", path), changedAt: num(o, "changedAt", path) };
}

function healthOf(v: unknown, path: string): HealthSpec | undefined {
  if (v === undefined) return undefined;
  const o = object(v, path);
  const check = checkOf(o.check, `${path}.check`);
  return o.result === undefined ? { check } : { check, result: resultOf(o.result, `${path}.result`) };
}

/** instanceSpecOf checks a spec a worker's put sends, and copies what it knows of it (nothing else reaches the registry). */
export function instanceSpecOf(v: unknown, path = "spec"): InstanceSpec {
  const o = object(v, path);
  const key = instanceKeyOf(o, path);
  const tags = o.tags;
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string")) throw new MalformedMessage(`${path}.tags: must be a list of strings`);
  const metadata = object(o.metadata, `${path}.metadata`);
  for (const [k, val] of Object.entries(metadata)) if (typeof val !== "string") throw new MalformedMessage(`${path}.metadata.${k.slice(0, 64)}: must be a string`);
  const health = healthOf(o.health, `${path}.health`);
  return {
    ...key,
    host: str(o, "host", path),
    port: num(o, "port", path),
    version: str(o, "version", path),
    zone: str(o, "zone", path),
    tags: tags as string[],
    metadata: metadata as Record<string, string>,
    weight: num(o, "weight", path),
    status: oneOf(o, "status", path, ["SERVING", "NOT_SERVING", "DRAINING"] as const),
    owner: str(o, "owner", path),
    ...(o.operatorStatus !== undefined ? { operatorStatus: oneOf(o, "operatorStatus", path, ["NONE", "DRAINING", "DISABLED"] as const) } : {}),
    ...(health !== undefined ? { health } : {}),
  };
}

/** configWriteOf checks a configuration write a worker forwards. */
export function configWriteOf(v: unknown, path = "write"): ConfigWrite {
  const o = object(v, path);
  const value = o.value;
  if (value !== undefined && !(value instanceof Uint8Array)) throw new MalformedMessage(`${path}.value: must be bytes`);
  const optionalNumber = (field: string): number | undefined => (o[field] === undefined ? undefined : num(o, field, path));
  const toVersion = optionalNumber("toVersion");
  const expectedVersion = optionalNumber("expectedVersion");
  if (o.contentType !== undefined && typeof o.contentType !== "string") throw new MalformedMessage(`${path}.contentType: must be a string`);
  return {
    namespace: str(o, "namespace", path),
    service: str(o, "service", path),
    key: str(o, "key", path),
    op: oneOf(o, "op", path, ["put", "delete", "rollback"] as const),
    principal: str(o, "principal", path),
    now: num(o, "now", path),
    ...(value !== undefined ? { value } : {}),
    ...(o.contentType !== undefined ? { contentType: o.contentType as string } : {}),
    ...(toVersion !== undefined ? { toVersion } : {}),
    ...(expectedVersion !== undefined ? { expectedVersion } : {}),
  };
}
