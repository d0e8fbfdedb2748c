import { Http2SessionManager } from "@connectrpc/connect-node";
import { createMaxineClient, EventType, RemovalReason, type MaxineClient, type WatchServicesResponse } from "@maxine/sdk";
import { startServerProcess, type ServerProcess } from "./server-process.js";

/** Replica is a Maxine server child process in Redis mode, with a client on a connection the test owns. */
export interface Replica {
  readonly server: ServerProcess;
  readonly client: MaxineClient;
  readonly connection: Http2SessionManager;
}

/** startReplica starts a server process on redisUrl and registry, plus env. */
export async function startReplica(redisUrl: string, registry: string, env: Record<string, string> = {}): Promise<Replica> {
  const server = await startServerProcess({
    MAXINE_STORE: "redis",
    MAXINE_REDIS_URL: redisUrl,
    MAXINE_REDIS_REGISTRY: registry,
    MAXINE_SHUTDOWN_GRACE: "300ms",
    MAXINE_LEASE_TTL_MIN: "100ms",
    MAXINE_REDIS_RENEW_INTERVAL: "50ms",
    MAXINE_REDIS_SWEEP_INTERVAL: "50ms",
    ...env,
  });
  const connection = new Http2SessionManager(server.url);
  return { server, connection, client: createMaxineClient({ baseUrl: server.url, sessionManager: connection }) };
}

/** stopReplica closes the test's connection and stops the process (if still running). */
export async function stopReplica(r: Replica | undefined): Promise<void> {
  if (r === undefined) return;
  r.connection.abort();
  if (r.server.child.exitCode === null && r.server.child.signalCode === null) await r.server.stop();
}

/** Seen is one watch message, compactly: "ADDED p-1@3", "REMOVED p-1@4:STREAM_CLOSED", "end@2", "progress@5", "snapshot[p-1]". */
export type Seen = string;

/** brief describes one WatchServices message for assertions. */
export function brief(m: WatchServicesResponse): Seen {
  switch (m.message.case) {
    case "snapshot":
      return `snapshot[${m.message.value.instances.map((i) => i.instanceId).join(",")}]`;
    case "snapshotEnd":
      return `end@${m.message.value.revision}${m.message.value.reset ? ":reset" : ""}`;
    case "event": {
      const e = m.message.value;
      const reason = e.removalReason !== RemovalReason.UNSPECIFIED ? `:${RemovalReason[e.removalReason]}` : "";
      return `${EventType[e.type]} ${e.instance?.instanceId}@${e.revision}${reason}`;
    }
    case "progress":
      return `progress@${m.message.value.revision}`;
    default:
      return "?";
  }
}

/** WatchRecord is an open watch stream and every message it got, briefly. */
export interface WatchRecord {
  readonly seen: Seen[];
  readonly registryId: () => string;
  /** until waits for a message matching re (up to timeoutMs). */
  until(re: RegExp, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** watch opens WatchServices on client and records it. */
export function watch(
  client: MaxineClient,
  req: { services: string[]; resumeRevision?: bigint; registryId?: string },
): WatchRecord {
  const ac = new AbortController();
  const seen: Seen[] = [];
  let registryId = "";
  let failure: unknown;
  const done = (async () => {
    try {
      for await (const m of client.watchServices(
        { services: req.services, resumeRevision: req.resumeRevision ?? 0n, registryId: req.registryId ?? "" },
        { signal: ac.signal },
      )) {
        if (m.message.case === "snapshotEnd") registryId = m.message.value.registryId;
        seen.push(brief(m));
      }
    } catch (err) {
      if (!ac.signal.aborted) failure = err;
    }
  })();
  return {
    seen,
    registryId: () => registryId,
    async until(re, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!seen.some((s) => re.test(s))) {
        if (failure !== undefined) throw failure;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${re}; seen: ${seen.join(" | ")}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async close() {
      ac.abort();
      await done;
    },
  };
}

/** events keeps only the ADDED/UPDATED/REMOVED messages of seen. */
export function events(seen: readonly Seen[]): Seen[] {
  return seen.filter((s) => /^(ADDED|UPDATED|REMOVED) /.test(s));
}
