import { availableParallelism } from "node:os";
import { redactUrl } from "./domain/redact.js";
import type { OverflowPolicy } from "./watch/watcher.js";
import { DEFAULT_CHECK_ALLOW, parseAllowList } from "./checks/targets.js";

export { redactUrl };

/** Config is every server setting, read from flags and environment variables. */
export interface Config {
  host: string;
  port: number;
  logLevel: string;
  logBuffer: number;
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
  tlsClientAuth: "none" | "request" | "require";
  tlsReloadIntervalMs: number;
  insecure: boolean;
  corsOrigins: string;
  ui: boolean;
  leaseTtlDefaultMs: number;
  leaseTtlMinMs: number;
  leaseTtlMaxMs: number;
  graceMs: number;
  checkAllow: string;
  checkConcurrency: number;
  checkIntervalMinMs: number;
  checkIntervalMaxMs: number;
  maxMessageBytes: number;
  maxResponseBytes: number;
  maxHeaderBytes: number;
  handshakeTimeoutMs: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  keepaliveIntervalMs: number;
  keepaliveTimeoutMs: number;
  maxUnsentBytesPerConnection: number;
  maxBufferedBytesPerConnection: number;
  maxBufferedBytes: number;
  maxTags: number;
  maxTagLength: number;
  maxMetadataEntries: number;
  maxMetadataBytes: number;
  maxInstancesPerService: number;
  maxInstances: number;
  maxServices: number;
  maxNamespaces: number;
  maxInstancesPerPrincipal: number;
  maxHeartbeatsPerPrincipal: number;
  maxWatchersPerPrincipal: number;
  maxWatchServices: number;
  maxWatchHeld: number;
  maxStreamsPerConnection: number;
  maxHeartbeatStreams: number;
  maxHeartbeatsPerConnection: number;
  maxWatchers: number;
  maxWatchersPerConnection: number;
  watchHistory: number;
  watchQueue: number;
  watchOverflow: OverflowPolicy;
  watchSnapshotChunk: number;
  watchProgressIntervalMs: number;
  watchMemoryBudget: number;
  shutdownGraceMs: number;
  fastPath: boolean;
  auditLog: boolean;
  authPublicServices: string;
  authMetrics: boolean;
  authTokensFile: string;
  authPolicyFile: string;
  authJwksFile: string;
  authJwtPublicKeys: string;
  authJwtIssuer: string;
  authJwtAudience: string;
  authJwtClockSkewMs: number;
  authJwtPrincipalClaim: string;
  authJwtRolesClaim: string;
  store: "memory" | "redis";
  workers: number;
  workerIpcBuffer: number;
  redisUrl: string;
  redisSentinels: string;
  redisSentinelName: string;
  redisCluster: string;
  redisRegistry: string;
  redisLogMax: number;
  redisRenewIntervalMs: number;
  redisSweepIntervalMs: number;
  redisLockTtlMs: number;
  redisRecoveryWindowMs: number;
  redisCommandTimeoutMs: number;
  redisConnectTimeoutMs: number;
  dataDir: string;
  configFsync: boolean;
  configMaxValueBytes: number;
  configMaxKeysPerService: number;
  configHistoryDepth: number;
  xdsMaxStreams: number;
  xdsMaxResourcesPerStream: number;
}

/** Setting describes one configuration entry; README's table lists every one (a test checks). */
export interface Setting {
  readonly key: keyof Config;
  readonly env: string;
  readonly flag: string;
  readonly default: string;
  readonly description: string;
  readonly parse: (raw: string, name: string) => Config[keyof Config];
}

/** ConfigError is a setting that cannot be parsed; main prints it and exits with status 2. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const str = (raw: string): string => raw;

function int(min: number, max: number) {
  return (raw: string, name: string): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new ConfigError(`${name}: must be an integer ${min}..${max}, got ${JSON.stringify(raw)}`);
    }
    return n;
  };
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function duration(minMs: number) {
  return (raw: string, name: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(raw.trim());
    const ms = m === null ? NaN : Math.round(Number(m[1]) * UNITS[m[2]!]!);
    if (!(ms >= minMs)) {
      throw new ConfigError(`${name}: must be a duration like 500ms, 10s, 5m or 1h, at least ${minMs}ms, got ${JSON.stringify(raw)}`);
    }
    return ms;
  };
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string, name: string): T => {
    if (!(values as string[]).includes(raw)) {
      throw new ConfigError(`${name}: must be one of ${values.join(", ")}, got ${JSON.stringify(raw)}`);
    }
    return raw as T;
  };
}

const MAX = 2 ** 31 - 1;

function onOff(raw: string, name: string): boolean {
  if (raw !== "on" && raw !== "off") throw new ConfigError(`${name}: must be on or off, got ${JSON.stringify(raw)}`);
  return raw === "on";
}

function hostPorts(raw: string, name: string): string {
  const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const hp of list) {
    if (!/^[^\s:]+:\d{1,5}$/.test(hp) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(hp)) {
      throw new ConfigError(`${name}: must be a comma-separated list of host:port, got ${JSON.stringify(hp)}`);
    }
  }
  return list.join(",");
}

function redisUrl(raw: string, name: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name}: must be a URL like redis://127.0.0.1:6379, got ${JSON.stringify(redactUrl(raw))}`);
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new ConfigError(`${name}: must start with redis:// or rediss://, got ${JSON.stringify(redactUrl(raw))}`);
  }
  if (url.pathname.length > 1 && !/^\/\d+$/.test(url.pathname)) {
    throw new ConfigError(`${name}: the path must be a database number, got ${JSON.stringify(url.pathname)}`);
  }
  return raw;
}


/**
 * secretsOf lists the secrets in a configuration (the Redis password, as
 * written and decoded), for scrubbing text that could quote them.
 */
export function secretsOf(config: Pick<Config, "redisUrl">): string[] {
  const at = config.redisUrl.lastIndexOf("@");
  if (at < 0) return [];
  const scheme = config.redisUrl.indexOf("://");
  const userinfo = config.redisUrl.slice(scheme >= 0 && scheme < at ? scheme + 3 : 0, at);
  const colon = userinfo.indexOf(":");
  const password = colon < 0 ? "" : userinfo.slice(colon + 1);
  if (password === "") return [];
  let decoded = password;
  try {
    decoded = decodeURIComponent(password);
  } catch {
    // not percent-encoded: the raw form is the only one
  }
  return [...new Set([password, decoded])];
}

function checkAllow(raw: string, name: string): string {
  try {
    parseAllowList(raw);
  } catch (err) {
    throw new ConfigError(`${name}: ${(err as Error).message}`);
  }
  return raw;
}

function claimName(raw: string, name: string): string {
  if (!/^[A-Za-z0-9._:/-]{1,128}$/.test(raw)) throw new ConfigError(`${name}: must be a JWT claim name, got ${JSON.stringify(raw)}`);
  return raw;
}

function origins(raw: string, name: string): string {
  const list = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  for (const o of list) {
    let origin: string | undefined;
    try {
      origin = new URL(o).origin;
    } catch {
      origin = undefined;
    }
    if (o !== "*" && origin !== o.toLowerCase().replace(/\/$/, "")) {
      throw new ConfigError(`${name}: must be * or a comma-separated list of origins like https://app.example.com or http://localhost:3000 (scheme, host, optional port; no path), got ${JSON.stringify(o)}`);
    }
  }
  return list.map((o) => o.replace(/\/$/, "")).join(",");
}

function registryName(raw: string, name: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(raw)) {
    throw new ConfigError(`${name}: must be 1..64 letters, digits, '.', '_' or '-', got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/** MAX_WORKERS is the most worker processes MAXINE_WORKERS may ask for. */
export const MAX_WORKERS = 64;

/** workerCount reads MAXINE_WORKERS: an integer 1..MAX_WORKERS, or auto (os.availableParallelism(), at most MAX_WORKERS). */
function workerCount(raw: string, name: string): number {
  if (raw.trim() === "auto") return Math.min(MAX_WORKERS, availableParallelism());
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(`${name}: must be auto or an integer 1..${MAX_WORKERS}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function setting(key: keyof Config, env: string, def: string, description: string, parse: Setting["parse"]): Setting {
  const flag = `--${env.replace(/^MAXINE_/, "").toLowerCase().replaceAll("_", "-")}`;
  return { key, env, flag, default: def, description, parse };
}

/** SETTINGS is the configuration table, in README order. */
export const SETTINGS: readonly Setting[] = [
  setting("host", "MAXINE_HOST", "127.0.0.1", "Address to listen on (0.0.0.0 or :: for all interfaces).", str),
  setting("port", "MAXINE_PORT", "7400", "Port for gRPC, gRPC-Web and Connect, HTTP/2 and HTTP/1.1 (0 picks a free port).", int(0, 65535)),
  setting("logLevel", "MAXINE_LOG_LEVEL", "info", "pino log level: trace, debug, info, warn, error, fatal, silent.", oneOf("trace", "debug", "info", "warn", "error", "fatal", "silent")),
  setting("logBuffer", "MAXINE_LOG_BUFFER", "16777216", "Most bytes of log lines that may wait for stdout. Lines are written off the event loop; when stdout's reader falls this far behind, further lines are dropped and counted in maxine_log_dropped_lines_total instead of slowing the server.", int(4096, 2 ** 31)),
  setting("tlsCert", "MAXINE_TLS_CERT", "", "PEM certificate chain (leaf first) served on the port; with MAXINE_TLS_KEY every connection is TLS, ALPN h2 and http/1.1 (docs/security.md). Empty: cleartext.", str),
  setting("tlsKey", "MAXINE_TLS_KEY", "", "PEM private key of MAXINE_TLS_CERT (no passphrase).", str),
  setting("tlsCa", "MAXINE_TLS_CA", "", "PEM CA certificates client certificates are verified against (mTLS, with MAXINE_TLS_CLIENT_AUTH).", str),
  setting("tlsClientAuth", "MAXINE_TLS_CLIENT_AUTH", "none", "Client certificates: none, request (asked for; a verified one gives the caller its identity) or require (a connection without a verified one is refused in the handshake).", oneOf("none", "request", "require")),
  setting("tlsReloadIntervalMs", "MAXINE_TLS_RELOAD_INTERVAL", "2s", "How often the TLS files are checked for changes, which are then loaded for new connections (0ms: only on SIGHUP); a bad new file keeps the old certificate.", duration(0)),
  setting("insecure", "MAXINE_INSECURE", "off", "on lets the server listen on a non-loopback address with neither TLS nor authentication (cleartext, anyone who reaches the port may change the registry); off refuses to start so.", onOff),
  setting("corsOrigins", "MAXINE_CORS_ORIGINS", "", "Comma-separated browser origins allowed to call (CORS, Connect and gRPC-Web), or *; empty: none (requests with any other Origin are refused).", origins),
  setting("ui", "MAXINE_UI", "on", "on: the dashboard (a live web page, README \"Dashboard\") is served at /ui/ on the same port, and the page's own origin may call the API; off: /ui/ answers 404.", onOff),
  setting("leaseTtlDefaultMs", "MAXINE_LEASE_TTL_DEFAULT", "10s", "Lease TTL of a Register that sets none.", duration(1)),
  setting("leaseTtlMinMs", "MAXINE_LEASE_TTL_MIN", "1s", "Shortest lease TTL a client may ask for.", duration(1)),
  setting("leaseTtlMaxMs", "MAXINE_LEASE_TTL_MAX", "1h", "Longest lease TTL a client may ask for.", duration(1)),
  setting("graceMs", "MAXINE_GRACE", "1s", "How long an instance outlives its ended heartbeat stream; a reconnect within it causes no events (none after a stream that MAXINE_KEEPALIVE_TIMEOUT closed).", duration(0)),
  setting("checkAllow", "MAXINE_CHECK_ALLOW", DEFAULT_CHECK_ALLOW, "Networks (CIDR, comma-separated) the registry's health-check probes may reach; link-local ranges and the registry's own listening address are refused whatever it says. A Register whose check targets anything else fails with INVALID_ARGUMENT.", checkAllow),
  setting("checkConcurrency", "MAXINE_CHECK_CONCURRENCY", "512", "Health-check probes running at once on this server, for all instances; due probes beyond it wait (their delay shows in maxine_check_schedule_slip_seconds). With MAXINE_WORKERS=N each worker holds 1/N of it.", int(1, 100_000)),
  setting("checkIntervalMinMs", "MAXINE_CHECK_INTERVAL_MIN", "1s", "Shortest health-check interval a client may ask for.", duration(100)),
  setting("checkIntervalMaxMs", "MAXINE_CHECK_INTERVAL_MAX", "1h", "Longest health-check interval a client may ask for.", duration(100)),
  setting("maxMessageBytes", "MAXINE_MAX_MESSAGE_BYTES", "4194304", "Largest request message, in bytes (larger ones are refused with RESOURCE_EXHAUSTED before they are read).", int(1024, 2 ** 32 - 1)),
  setting("maxResponseBytes", "MAXINE_MAX_RESPONSE_BYTES", "4194304", "Largest response message, in bytes: a larger answer is RESOURCE_EXHAUSTED on every protocol, and watch snapshots are cut into chunks that fit it.", int(1024, 2 ** 32 - 1)),
  setting("maxHeaderBytes", "MAXINE_MAX_HEADER_BYTES", "16384", "Largest request header block, HTTP/1.1 and HTTP/2, in bytes (HTTP/1.1 gets 431, an HTTP/2 stream RST_STREAM ENHANCE_YOUR_CALM).", int(1024, 1 << 20)),
  setting("handshakeTimeoutMs", "MAXINE_HANDSHAKE_TIMEOUT", "10s", "How long a new connection may take to send its first bytes (which say HTTP/1.1 or HTTP/2) before it is closed.", duration(1)),
  setting("headersTimeoutMs", "MAXINE_HEADERS_TIMEOUT", "10s", "How long an HTTP/1.1 request may take to send its header block before it gets 408 and the connection closes.", duration(1)),
  setting("idleTimeoutMs", "MAXINE_IDLE_TIMEOUT", "65s", "How long a connection with no open request or stream is kept (HTTP/1.1 keep-alive; HTTP/2 gets GOAWAY); open heartbeat and watch streams keep it.", duration(1)),
  setting("maxConnections", "MAXINE_MAX_CONNECTIONS", "10000", "Most open client connections; a new one beyond it is closed at once (keep it under the file-descriptor limit). With MAXINE_WORKERS=N each worker holds 1/N of it.", int(1, MAX)),
  setting("maxConnectionsPerAddress", "MAXINE_MAX_CONNECTIONS_PER_ADDRESS", "1000", "Most open connections from one client address; a new one beyond it is closed at once. Applies per worker with MAXINE_WORKERS.", int(1, MAX)),
  setting(
    "keepaliveIntervalMs",
    "MAXINE_KEEPALIVE_INTERVAL",
    "500ms",
    "How soon after its last PING was acknowledged an HTTP/2 connection holding open streams (heartbeats, watches) is sent another (0ms: no PINGs, silent peers are never found).",
    duration(0),
  ),
  setting(
    "keepaliveTimeoutMs",
    "MAXINE_KEEPALIVE_TIMEOUT",
    "2s",
    "An HTTP/2 connection whose PING is not acknowledged within this is closed and its streams end: a stopped or hung process, or a dead network path (its instances go at once, with no MAXINE_GRACE after it).",
    duration(1),
  ),
  setting("maxUnsentBytesPerConnection", "MAXINE_MAX_UNSENT_BYTES_PER_CONNECTION", "8388608", "Most answer bytes an HTTP/2 connection may leave unread; beyond it the streams holding the most get RST_STREAM ENHANCE_YOUR_CALM.", int(1024, 2 ** 32 - 1)),
  setting("maxBufferedBytesPerConnection", "MAXINE_MAX_BUFFERED_BYTES_PER_CONNECTION", "16777216", "Most bytes of unfinished request messages one connection may make the server hold; a message announced beyond it gets RESOURCE_EXHAUSTED before it is read.", int(1024, 2 ** 40)),
  setting("maxBufferedBytes", "MAXINE_MAX_BUFFERED_BYTES", "268435456", "Most bytes of unfinished request messages all connections together may make the server hold. With MAXINE_WORKERS=N each worker holds 1/N of it.", int(1024, 2 ** 40)),
  setting("maxTags", "MAXINE_MAX_TAGS", "32", "Most tags on an instance or in a filter.", int(0, 10_000)),
  setting("maxTagLength", "MAXINE_MAX_TAG_LENGTH", "128", "Longest tag, in characters.", int(1, 65_536)),
  setting("maxMetadataEntries", "MAXINE_MAX_METADATA_ENTRIES", "64", "Most metadata entries on an instance.", int(0, 100_000)),
  setting("maxMetadataBytes", "MAXINE_MAX_METADATA_BYTES", "4096", "Most bytes of metadata keys and values on an instance.", int(0, 1 << 24)),
  setting("maxInstancesPerService", "MAXINE_MAX_INSTANCES_PER_SERVICE", "10000", "Most instances in one service; Register beyond it gets RESOURCE_EXHAUSTED.", int(1, MAX)),
  setting("maxInstances", "MAXINE_MAX_INSTANCES", "1000000", "Quota: most instances in the registry; a Register of a new instance beyond it gets RESOURCE_EXHAUSTED (stored ones stay).", int(1, MAX)),
  setting("maxServices", "MAXINE_MAX_SERVICES", "100000", "Quota: most services in the registry.", int(1, MAX)),
  setting("maxNamespaces", "MAXINE_MAX_NAMESPACES", "10000", "Quota: most namespaces in the registry.", int(1, MAX)),
  setting("maxInstancesPerPrincipal", "MAXINE_MAX_INSTANCES_PER_PRINCIPAL", "100000", "Quota: most instances one principal may own (with authentication off, every caller is the one principal anonymous).", int(1, MAX)),
  setting("maxHeartbeatsPerPrincipal", "MAXINE_MAX_HEARTBEATS_PER_PRINCIPAL", "100000", "Quota: most open Heartbeat streams one principal may hold over all its connections. Applies per worker with MAXINE_WORKERS.", int(1, MAX)),
  setting("maxWatchersPerPrincipal", "MAXINE_MAX_WATCHERS_PER_PRINCIPAL", "100000", "Quota: most open WatchServices streams one principal may hold over all its connections. Applies per worker with MAXINE_WORKERS.", int(1, MAX)),
  setting("maxWatchServices", "MAXINE_MAX_WATCH_SERVICES", "1000", "Most services one WatchServices request may name.", int(1, MAX)),
  setting("maxWatchHeld", "MAXINE_WATCH_MAX_HELD", "100000", "Most instances a resuming WatchServices request may say it holds (held), so that its opening snapshot carries only the differences; more is refused with INVALID_ARGUMENT.", int(0, MAX)),
  setting("maxStreamsPerConnection", "MAXINE_MAX_STREAMS_PER_CONNECTION", "1000", "HTTP/2 concurrent streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).", int(1, MAX)),
  setting("maxHeartbeatStreams", "MAXINE_MAX_HEARTBEAT_STREAMS", "100000", "Most open Heartbeat streams in total. With MAXINE_WORKERS=N each worker holds 1/N of it.", int(1, MAX)),
  setting("maxHeartbeatsPerConnection", "MAXINE_MAX_HEARTBEATS_PER_CONNECTION", "1000", "Most open Heartbeat streams on one connection (the default matches MAXINE_MAX_STREAMS_PER_CONNECTION, so a client holding many Sessions on one connection is bounded by HTTP/2 flow, not refused).", int(1, MAX)),
  setting("maxWatchers", "MAXINE_MAX_WATCHERS", "100000", "Most open WatchServices streams in total. With MAXINE_WORKERS=N each worker holds 1/N of it.", int(1, MAX)),
  setting("maxWatchersPerConnection", "MAXINE_MAX_WATCHERS_PER_CONNECTION", "1000", "Most open WatchServices streams on one connection.", int(1, MAX)),
  setting("watchHistory", "MAXINE_WATCH_HISTORY", "10000", "Changes kept for resuming watches (a resume within them replays exactly, whatever their number); an older resume revision gets a reset snapshot.", int(0, MAX)),
  setting("watchQueue", "MAXINE_WATCH_QUEUE", "4096", "Changes a watcher may fall behind the live head (counted from when it opened or last got a snapshot; a resume's backlog does not count) before its overflow policy applies.", int(1, MAX)),
  setting("watchOverflow", "MAXINE_WATCH_OVERFLOW", "reset", "What a watcher that overflows gets: reset (a fresh snapshot, reason OVERFLOW) or close (RESOURCE_EXHAUSTED).", oneOf("reset", "close")),
  setting("watchSnapshotChunk", "MAXINE_WATCH_SNAPSHOT_CHUNK", "100", "Most instances in one snapshot message.", int(1, MAX)),
  setting("watchMemoryBudget", "MAXINE_WATCH_MEMORY_BUDGET", "268435456", "Most bytes all watch streams together may hold unsent (answers written that their clients have not read); beyond it the streams holding the most are closed with RESOURCE_EXHAUSTED (HTTP/2 RST_STREAM ENHANCE_YOUR_CALM, an HTTP/1.1 connection closes), which frees them. With MAXINE_WORKERS=N each worker holds 1/N of it.", int(1024, 2 ** 40)),
  setting("watchProgressIntervalMs", "MAXINE_WATCH_PROGRESS_INTERVAL", "10s", "Idle time after which a watch stream gets a progress bookmark (0ms: never).", duration(0)),
  setting("shutdownGraceMs", "MAXINE_SHUTDOWN_GRACE", "5s", "On SIGTERM/SIGINT, how long connections may take to close before they are cut.", duration(0)),
  setting("fastPath", "MAXINE_FAST_PATH", "on", "on: gRPC, gRPC-Web and Connect POSTs are framed by Maxine's own transport (transport/serve.ts); off: every call is framed by connect-es, the reference (the same handlers and interceptors either way).", onOff),
  setting("auditLog", "MAXINE_AUDIT_LOG", "on", "on: every write (Register, Deregister, a status change, a refusal) is logged at info with principal, method, instance key and result.", onOff),
  setting("authPublicServices", "MAXINE_AUTH_PUBLIC_SERVICES", "grpc.health.v1.Health", "Comma-separated services served without credentials while authentication is on (empty: none).", str),
  setting("authMetrics", "MAXINE_AUTH_METRICS", "off", "on (with authentication on): GET /metrics needs `authorization: Bearer <token>` of any principal the tokens file or JWT keys accept.", onOff),
  setting("authTokensFile", "MAXINE_AUTH_TOKENS_FILE", "", "Tokens file: one `<principal> sha256:<hex> [role,...]` a line; tokens are stored only as their SHA-256 (docs/security.md; empty: no tokens).", str),
  setting("authPolicyFile", "MAXINE_AUTH_POLICY_FILE", "", "Policy file (YAML): roles granting read, register or admin on namespace and service globs, and bindings of principals to roles (docs/security.md; empty: deny all once authentication is on).", str),
  setting("authJwksFile", "MAXINE_AUTH_JWKS_FILE", "", "Local JWKS file of public keys that sign accepted JWTs (never fetched over the network; empty: none).", str),
  setting("authJwtPublicKeys", "MAXINE_AUTH_JWT_PUBLIC_KEYS", "", "Comma-separated PEM files, one public key or certificate each, that sign accepted JWTs (empty: none).", str),
  setting("authJwtIssuer", "MAXINE_AUTH_JWT_ISSUER", "", "Required iss claim of a JWT (empty: any issuer).", str),
  setting("authJwtAudience", "MAXINE_AUTH_JWT_AUDIENCE", "", "Required aud claim of a JWT (empty: any audience).", str),
  setting("authJwtClockSkewMs", "MAXINE_AUTH_JWT_CLOCK_SKEW", "30s", "Clock skew tolerated on a JWT's exp and nbf.", duration(0)),
  setting("authJwtPrincipalClaim", "MAXINE_AUTH_JWT_PRINCIPAL_CLAIM", "sub", "JWT claim naming the principal.", claimName),
  setting("authJwtRolesClaim", "MAXINE_AUTH_JWT_ROLES_CLAIM", "roles", "JWT claim listing the principal's roles (a list of strings or one space-separated string).", claimName),
  setting("store", "MAXINE_STORE", "memory", "Where state lives: memory (this process only) or redis (shared by every replica on one Redis; docs/redis.md).", oneOf("memory", "redis")),
  setting(
    "workers",
    "MAXINE_WORKERS",
    "1",
    "Worker processes serving the one port (node:cluster; auto: one per CPU, os.availableParallelism()), each a replica of the registry: with MAXINE_STORE=redis, of the shared store; with MAXINE_STORE=memory, of the registry the primary process holds (and the configuration store it alone opens). Caps on the server's own resources are divided among them; per-address and per-principal caps apply per worker (docs/workers.md).",
    workerCount,
  ),
  setting(
    "workerIpcBuffer",
    "MAXINE_WORKER_IPC_BUFFER",
    "268435456",
    "With MAXINE_STORE=memory and MAXINE_WORKERS > 1: most bytes of the registry's feed (and of the answers) the primary holds for one worker that has not read them yet; a worker that falls this far behind is killed and started again, with a fresh copy of the registry (its heartbeat streams end: their instances go after MAXINE_GRACE unless a session beats them elsewhere).",
    int(1 << 20, 2 ** 40),
  ),
  setting("redisUrl", "MAXINE_REDIS_URL", "redis://127.0.0.1:6379", "Redis address, redis://[user:password@]host:port[/db] (rediss:// for TLS); with Sentinels, only its credentials and db are used.", redisUrl),
  setting("redisSentinels", "MAXINE_REDIS_SENTINELS", "", "Comma-separated host:port of Redis Sentinels; when set, Maxine connects to the master they name and follows its failovers (empty: MAXINE_REDIS_URL directly).", hostPorts),
  setting("redisSentinelName", "MAXINE_REDIS_SENTINEL_NAME", "mymaster", "Name of the master the Sentinels monitor.", str),
  setting("redisCluster", "MAXINE_REDIS_CLUSTER", "", "Comma-separated host:port seed nodes of a Redis Cluster; when set, Maxine connects to the Cluster (all its keys share one hash slot) and follows slot moves and failovers; credentials and TLS still come from MAXINE_REDIS_URL, whose db must be 0 (empty: not a Cluster; exclusive with MAXINE_REDIS_SENTINELS).", hostPorts),
  setting("redisRegistry", "MAXINE_REDIS_REGISTRY", "default", "Registry name: its keys share the hash tag {maxine:NAME} (one Redis Cluster slot); replicas with the same name share one registry.", registryName),
  setting("redisLogMax", "MAXINE_REDIS_LOG_MAX", "10000", "Approximate length of the change stream kept in Redis (seeds the watch history of a replica that starts).", int(100, MAX)),
  setting("redisRenewIntervalMs", "MAXINE_REDIS_RENEW_INTERVAL", "250ms", "How often a replica writes its batched lease renewals to Redis; keep it well under MAXINE_LEASE_TTL_MIN.", duration(10)),
  setting("redisSweepIntervalMs", "MAXINE_REDIS_SWEEP_INTERVAL", "250ms", "How often the replica holding the sweeper lock removes expired leases.", duration(10)),
  setting("redisLockTtlMs", "MAXINE_REDIS_LOCK_TTL", "2s", "Sweeper lock lifetime: how soon another replica sweeps when the holder dies.", duration(100)),
  setting("redisRecoveryWindowMs", "MAXINE_REDIS_RECOVERY_WINDOW", "5s", "After a Redis outage, how long sweeping pauses while replicas re-assert their leases (no mass expiry).", duration(0)),
  setting("redisCommandTimeoutMs", "MAXINE_REDIS_COMMAND_TIMEOUT", "2s", "How long a write may wait on Redis before it fails with UNAVAILABLE.", duration(10)),
  setting("redisConnectTimeoutMs", "MAXINE_REDIS_CONNECT_TIMEOUT", "10s", "How long a starting server waits for Redis before it exits with an error.", duration(10)),
  setting("dataDir", "MAXINE_DATA_DIR", "maxine-data", "Directory of the embedded service configuration store (LevelDB in DIR/config, relative to the working directory; opened at the first ConfigService call, one server per directory); off keeps configuration in memory only. Ignored with MAXINE_STORE=redis, which keeps configuration in Redis.", str),
  setting("configFsync", "MAXINE_CONFIG_FSYNC", "on", "on: a configuration write is acknowledged only once it is on disk (fsync; concurrent writes share one, group commit); off: once the OS has it (lost with the machine, not with the process).", onOff),
  setting("configMaxValueBytes", "MAXINE_CONFIG_MAX_VALUE_BYTES", "1048576", "Largest configuration value, in bytes (keep it under MAXINE_MAX_MESSAGE_BYTES and MAXINE_MAX_RESPONSE_BYTES).", int(0, 2 ** 30)),
  setting("configMaxKeysPerService", "MAXINE_CONFIG_MAX_KEYS_PER_SERVICE", "1000", "Most configuration keys that exist at once in one service.", int(1, MAX)),
  setting("configHistoryDepth", "MAXINE_CONFIG_HISTORY_DEPTH", "10", "Versions of a configuration key kept (the latest included) for Get of a version, History and Rollback.", int(1, 10000)),
  setting("xdsMaxStreams", "MAXINE_XDS_MAX_STREAMS", "10000", "Most open xDS streams (StreamAggregatedResources and DeltaAggregatedResources) on this server; each also takes a watch slot of its connection and principal. With MAXINE_WORKERS=N each worker holds 1/N of it.", int(1, MAX)),
  setting("xdsMaxResourcesPerStream", "MAXINE_XDS_MAX_RESOURCES_PER_STREAM", "1000", "Most resource names one xDS stream may subscribe to, over its four types (a wildcard subscription counts as none: it gets every readable service).", int(1, MAX)),
];

/**
 * DIVIDED_AMONG_WORKERS are the caps on the server's own resources
 * (descriptors, memory, streams, probes at once): with MAXINE_WORKERS=N each
 * worker holds a share (workerShare), so that the server as a whole keeps
 * the configured total. Per-connection caps need no share (a connection
 * lives in one worker); per-address and per-principal caps apply per worker.
 */
export const DIVIDED_AMONG_WORKERS = [
  "maxConnections",
  "maxBufferedBytes",
  "watchMemoryBudget",
  "maxHeartbeatStreams",
  "maxWatchers",
  "xdsMaxStreams",
  "checkConcurrency",
] as const satisfies ReadonlyArray<keyof Config>;

/** workerShare is the configuration of one of config.workers workers: each DIVIDED_AMONG_WORKERS cap divided by the count, rounded up. */
export function workerShare(config: Config): Config {
  const share = { ...config };
  for (const key of DIVIDED_AMONG_WORKERS) share[key] = Math.max(1, Math.ceil(config[key] / config.workers));
  return share;
}

/** checkTls refuses TLS settings that do not go together. */
function checkTls(config: Config): void {
  if ((config.tlsCert === "") !== (config.tlsKey === "")) {
    throw new ConfigError(`${config.tlsCert === "" ? "MAXINE_TLS_CERT" : "MAXINE_TLS_KEY"}: must be set together with ${config.tlsCert === "" ? "MAXINE_TLS_KEY" : "MAXINE_TLS_CERT"} (TLS needs both a certificate and its key)`);
  }
  if (config.tlsClientAuth !== "none" && config.tlsCa === "") {
    throw new ConfigError(`MAXINE_TLS_CA: must name the CA file client certificates are verified against when MAXINE_TLS_CLIENT_AUTH is ${config.tlsClientAuth}`);
  }
  if (config.tlsCa !== "" && config.tlsClientAuth === "none") {
    throw new ConfigError(`MAXINE_TLS_CA: only verifies client certificates: set MAXINE_TLS_CLIENT_AUTH to request or require (the server's own chain goes in MAXINE_TLS_CERT)`);
  }
  if (config.tlsClientAuth !== "none" && config.tlsCert === "") {
    throw new ConfigError(`MAXINE_TLS_CLIENT_AUTH: needs TLS: set MAXINE_TLS_CERT and MAXINE_TLS_KEY`);
  }
}

/**
 * loadConfig reads settings from flags (`--port 7400` or `--port=7400`),
 * then environment variables, then defaults. Unknown flags and bad values
 * throw ConfigError naming the setting.
 */
export function loadConfig(argv: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Config {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf("=");
    const name = eq < 0 ? arg : arg.slice(0, eq);
    if (!SETTINGS.some((s) => s.flag === name)) throw new ConfigError(`${name}: unknown flag (see README's configuration table)`);
    const value = eq < 0 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new ConfigError(`${name}: needs a value`);
    flags.set(name, value);
  }
  const out: Partial<Record<keyof Config, unknown>> = {};
  for (const s of SETTINGS) {
    const fromFlag = flags.get(s.flag);
    const raw = fromFlag ?? env[s.env] ?? s.default;
    out[s.key] = s.parse(raw, fromFlag !== undefined ? s.flag : s.env);
  }
  const config = out as Config;
  if (config.leaseTtlMinMs > config.leaseTtlMaxMs) {
    throw new ConfigError(`MAXINE_LEASE_TTL_MIN: must not exceed MAXINE_LEASE_TTL_MAX`);
  }
  if (config.leaseTtlDefaultMs < config.leaseTtlMinMs || config.leaseTtlDefaultMs > config.leaseTtlMaxMs) {
    throw new ConfigError(`MAXINE_LEASE_TTL_DEFAULT: must lie within MAXINE_LEASE_TTL_MIN..MAXINE_LEASE_TTL_MAX`);
  }
  checkTls(config);
  if (config.checkIntervalMinMs > config.checkIntervalMaxMs) {
    throw new ConfigError(`MAXINE_CHECK_INTERVAL_MIN: must not exceed MAXINE_CHECK_INTERVAL_MAX`);
  }
  if (config.store === "redis" && config.redisRenewIntervalMs * 2 > config.leaseTtlMinMs) {
    throw new ConfigError(`MAXINE_REDIS_RENEW_INTERVAL: must be at most half of MAXINE_LEASE_TTL_MIN, or short leases lapse between renewals`);
  }
  if (config.redisCluster !== "" && config.redisSentinels !== "") {
    throw new ConfigError("MAXINE_REDIS_CLUSTER: set it or MAXINE_REDIS_SENTINELS, not both (a Cluster fails over by itself)");
  }
  if (config.redisCluster !== "" && !/^rediss?:\/\/[^/]*\/?0?$/.test(config.redisUrl)) {
    throw new ConfigError("MAXINE_REDIS_URL: a Redis Cluster has only db 0, so with MAXINE_REDIS_CLUSTER the URL names no other database");
  }
  return config;
}
