import { create, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ServingStatus, Strategy, type Instance } from "@maxine/sdk";
import { HealthCheckResponse_ServingStatus as HealthStatus } from "@maxine/sdk/gen/grpc/health/v1/health_pb";
import { DiscoverRequestSchema, DiscoverResponseSchema, RegistryService } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { UNARY_TIMEOUT_MS, type Connection, type GlobalOptions } from "../connection.js";
import { CliError, ExitCode } from "../errors.js";
import { INSTANCE_HEADER, instanceJson, instanceRow, LIVE_HEADER, liveRow, paint, type Output } from "../output.js";

/** Snapshot is a namespace's (or some services') instances at one revision. */
interface Snapshot {
  readonly instances: Instance[];
  readonly revision: bigint;
}

/** snapshot reads a WatchServices snapshot and ends the stream: every instance with its status, in one consistent read. */
async function snapshot(conn: Connection, namespace: string, services: readonly string[]): Promise<Snapshot> {
  const abort = new AbortController();
  const instances: Instance[] = [];
  const timer = setTimeout(() => abort.abort(new ConnectError(`no snapshot within ${UNARY_TIMEOUT_MS} ms`, Code.DeadlineExceeded)), UNARY_TIMEOUT_MS);
  try {
    for await (const m of conn.registry.watchServices({ namespace, services: [...services] }, { signal: abort.signal })) {
      if (m.message.case === "snapshot") instances.push(...m.message.value.instances);
      if (m.message.case === "snapshotEnd") return { instances, revision: m.message.value.revision };
    }
    throw new CliError("the server ended the watch before its snapshot");
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

const displayNamespace = (ns: string) => ns || "default";

/** services lists a namespace's services with their instances counted by status. */
export async function services(conn: Connection, g: GlobalOptions, out: Output): Promise<number> {
  const snap = await conn.once(() => snapshot(conn, g.namespace, []));
  const counts = new Map<string, Record<"instances" | "serving" | "draining" | "notServing", number>>();
  for (const i of snap.instances) {
    let c = counts.get(i.service);
    if (c === undefined) counts.set(i.service, (c = { instances: 0, serving: 0, draining: 0, notServing: 0 }));
    c.instances++;
    if (i.status === ServingStatus.SERVING) c.serving++;
    else if (i.status === ServingStatus.DRAINING) c.draining++;
    else c.notServing++;
  }
  const rows = [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (out.format === "json") {
    out.json({ namespace: displayNamespace(g.namespace), revision: String(snap.revision), services: rows.map(([service, c]) => ({ service, ...c })) });
    return ExitCode.OK;
  }
  if (rows.length === 0) {
    out.line(`no services in namespace ${displayNamespace(g.namespace)}`);
    return ExitCode.OK;
  }
  out.table(
    ["SERVICE", "INSTANCES", "SERVING", "DRAINING", "NOT_SERVING"],
    rows.map(([s, c]) => [s, String(c.instances), String(c.serving), String(c.draining), String(c.notServing)]),
  );
  return ExitCode.OK;
}

/**
 * instances lists one service's instances with their live lease state
 * (reported load, lease expiry): a Discover with include_all, which lists
 * every instance whatever its status (a fully drained service too) and is
 * the one answer that carries that state.
 */
export async function instances(conn: Connection, g: GlobalOptions, out: Output, service: string): Promise<number> {
  const req = create(DiscoverRequestSchema, { namespace: g.namespace, service, includeAll: true });
  let res;
  try {
    res = await conn.once(() => conn.registry.discover(req, { timeoutMs: UNARY_TIMEOUT_MS }));
  } catch (err) {
    const e = ConnectError.from(err);
    if (e.code === Code.NotFound) throw new CliError(`service ${displayNamespace(g.namespace)}/${service} has no instances`, ExitCode.NOT_FOUND);
    throw err;
  }
  if (out.format === "json") {
    out.json({ namespace: displayNamespace(g.namespace), service, revision: String(res.revision), instances: res.instances.map(instanceJson) });
    return ExitCode.OK;
  }
  const now = Date.now();
  out.table(LIVE_HEADER, res.instances.map((i) => liveRow(out, i, now)));
  return ExitCode.OK;
}

/** STRATEGIES are the --strategy names, as Discover's enum. */
export const STRATEGIES: Record<string, Strategy> = {
  "round-robin": Strategy.ROUND_ROBIN,
  random: Strategy.RANDOM,
  weighted: Strategy.WEIGHTED,
  "least-loaded": Strategy.LEAST_LOADED,
  "consistent-hash": Strategy.CONSISTENT_HASH,
  rendezvous: Strategy.RENDEZVOUS,
};

/** DiscoverOptions are discover's flags. */
export interface DiscoverOptions {
  readonly strategy: string;
  readonly hashKey?: string;
  readonly preferZone?: string;
  readonly tag: string[];
  readonly version?: string;
  readonly zone?: string;
  readonly metadata: Record<string, string>;
  readonly all?: boolean;
}

/** discover asks the server to choose one SERVING instance, as a client would. */
export async function discover(conn: Connection, g: GlobalOptions, out: Output, service: string, o: DiscoverOptions): Promise<number> {
  const req = create(DiscoverRequestSchema, {
    namespace: g.namespace,
    service,
    strategy: STRATEGIES[o.strategy],
    hashKey: o.hashKey ?? "",
    preferredZone: o.preferZone ?? "",
    filter: { tags: o.tag, version: o.version ?? "", zone: o.zone ?? "", metadata: o.metadata },
    includeAll: o.all === true,
  });
  const res = await conn.once(() => conn.registry.discover(req, { timeoutMs: UNARY_TIMEOUT_MS }));
  if (out.format === "json") {
    out.json(toJson(DiscoverResponseSchema, res));
    return ExitCode.OK;
  }
  const now = Date.now();
  const chosen = res.instance; // unset only for --all when nothing matching is SERVING
  const mark = (i: Instance) => (i.instanceId === chosen?.instanceId ? "*" : "");
  if (o.all === true) out.table(["", ...LIVE_HEADER], res.instances.map((i) => [mark(i), ...liveRow(out, i, now)]));
  else out.table(["", ...INSTANCE_HEADER], [["*", ...instanceRow(out, chosen!, now)]]);
  return ExitCode.OK;
}

/** health asks each server's grpc.health.v1 about itself ("") and the registry service; exit 1 unless all are SERVING. */
export async function health(conn: Connection, g: GlobalOptions, out: Output): Promise<number> {
  const names = ["", RegistryService.typeName];
  const results = await Promise.all(
    g.server.flatMap((server) =>
      names.map(async (service) => {
        const client = conn.healthOf(server);
        try {
          const r = await client.check({ service }, { timeoutMs: UNARY_TIMEOUT_MS });
          return { server, service, status: HealthStatus[r.status] ?? String(r.status), error: undefined };
        } catch (err) {
          const e = ConnectError.from(err);
          return { server, service, status: "UNREACHABLE", error: `${Code[e.code]}: ${e.rawMessage}` };
        }
      }),
    ),
  );
  const ok = results.every((r) => r.status === "SERVING");
  if (out.format === "json") {
    out.json({ ok, checks: results.map((r) => ({ server: r.server, service: r.service, status: r.status, ...(r.error !== undefined ? { error: r.error } : {}) })) });
  } else {
    const colored = (s: string) => paint(s, !out.color ? undefined : s === "SERVING" ? 32 : 31);
    out.table(
      ["SERVER", "SERVICE", "STATUS"],
      results.map((r) => [r.server, r.service === "" ? '"" (server)' : r.service, r.error !== undefined ? `${colored(r.status)} (${r.error})` : colored(r.status)]),
    );
  }
  return ok ? ExitCode.OK : ExitCode.ERROR;
}
