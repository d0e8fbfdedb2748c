import { OperatorStatus, Session, ServingStatus, type InstanceInit } from "@maxine/sdk";
import { UNARY_TIMEOUT_MS, type Connection, type GlobalOptions } from "../connection.js";
import { ExitCode } from "../errors.js";
import { address, instanceJson, statusName, type Output } from "../output.js";

/** RegisterOptions are register's flags. */
export interface RegisterOptions {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly zone?: string;
  readonly version?: string;
  readonly tag: string[];
  readonly metadata: Record<string, string>;
  readonly weight?: number;
  readonly status: "serving" | "draining" | "not-serving";
  readonly ttl?: number;
  /** load, when set, is reported on every heartbeat (Beat.load). */
  readonly load?: number;
}

const STATUSES = { serving: ServingStatus.SERVING, draining: ServingStatus.DRAINING, "not-serving": ServingStatus.NOT_SERVING };

/**
 * register registers an instance and keeps it alive on a heartbeat stream
 * (an SDK Session) until SIGINT or SIGTERM, then deregisters it: the CLI
 * form of a session, for scripts and trials. If the process is killed
 * instead, the instance goes one grace period after its stream dropped.
 */
export async function register(conn: Connection, g: GlobalOptions, out: Output, service: string, o: RegisterOptions): Promise<number> {
  const session = new Session(conn.registry);
  session.on("error", (err) => process.stderr.write(`maxine: session: ${(err as Error).message} (retrying)\n`));
  const instance: InstanceInit = {
    namespace: g.namespace,
    service,
    instanceId: o.id,
    host: o.host,
    port: o.port,
    zone: o.zone ?? "",
    version: o.version ?? "",
    tags: o.tag,
    metadata: o.metadata,
    weight: o.weight ?? 0,
    status: STATUSES[o.status],
  };
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  let handle;
  try {
    handle = await session.register(instance, o.ttl !== undefined ? { ttlMs: o.ttl } : {});
  } catch (err) {
    await session.close();
    throw err;
  }
  if (o.load !== undefined) handle.setLoad(o.load); // from the next beat on (at a third of the TTL)
  const name = `${g.namespace || "default"}/${service}/${o.id}`;
  if (out.format === "json") out.json({ event: "registered", instance: instanceJson(handle.instance) });
  // session.register resolved after the first beat was answered: the instance is bound to the stream
  else out.line(`registered ${name} at ${address(handle.instance)}; kept alive on a heartbeat stream, Ctrl-C deregisters`);
  const signal = await stopped;
  await session.close();
  if (out.format === "json") out.json({ event: "deregistered", signal, key: { namespace: g.namespace, service, instanceId: o.id } });
  else out.line(`deregistered ${name} (${signal})`);
  return ExitCode.OK;
}

/** deregister removes an instance at once (NOT_FOUND, exit 3, if it is not registered). */
export async function deregister(conn: Connection, g: GlobalOptions, out: Output, service: string, id: string): Promise<number> {
  const r = await conn.once(() => conn.registry.deregister({ key: { namespace: g.namespace, service, instanceId: id } }, { timeoutMs: UNARY_TIMEOUT_MS }));
  if (out.format === "json") out.json({ deregistered: { namespace: g.namespace || "default", service, instanceId: id }, revision: String(r.revision) });
  else out.line(`deregistered ${g.namespace || "default"}/${service}/${id} at revision ${r.revision}`);
  return ExitCode.OK;
}

/** DrainOptions are drain's flags. */
export interface DrainOptions {
  /** disable takes the instance out of service (NOT_SERVING) instead of draining it. */
  readonly disable?: boolean;
}

/**
 * drain sets an operator's override on an instance (SetOperatorStatus):
 * DRAINING, or with --disable NOT_SERVING, whatever the instance's own
 * heartbeats report, until undrain clears it. It needs the admin
 * permission on the service.
 */
export function drain(conn: Connection, g: GlobalOptions, out: Output, service: string, id: string, o: DrainOptions): Promise<number> {
  return setOperatorStatus(conn, g, out, service, id, o.disable ? OperatorStatus.DISABLED : OperatorStatus.DRAINING, o.disable ? "disabled" : "drained");
}

/** undrain clears an operator's override: the instance's status is again what its heartbeats report. */
export function undrain(conn: Connection, g: GlobalOptions, out: Output, service: string, id: string): Promise<number> {
  return setOperatorStatus(conn, g, out, service, id, OperatorStatus.UNSPECIFIED, "undrained");
}

async function setOperatorStatus(conn: Connection, g: GlobalOptions, out: Output, service: string, id: string, status: OperatorStatus, done: string): Promise<number> {
  const key = { namespace: g.namespace, service, instanceId: id };
  const r = await conn.once(() => conn.registry.setOperatorStatus({ key, status }, { timeoutMs: UNARY_TIMEOUT_MS }));
  if (out.format === "json") out.json({ instance: instanceJson(r.instance!), revision: String(r.revision) });
  else out.line(`${done} ${g.namespace || "default"}/${service}/${id}: status ${statusName(r.instance!.status)} at revision ${r.revision}`);
  return ExitCode.OK;
}
