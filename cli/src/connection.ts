import { createClient, type Client } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { readFileSync } from "node:fs";
import { createConfigClient, createMaxineTransport, FAILOVER_CODES, type ConfigClient, type MaxineClient, type TlsOptions, type TokenSource } from "@maxine/sdk";
import { Health } from "@maxine/sdk/gen/grpc/health/v1/health_pb";
import { RegistryService } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { usage } from "./errors.js";

/** DEFAULT_SERVER is where the CLI looks for a server when neither --server nor MAXINE_ADDR says. */
export const DEFAULT_SERVER = "http://127.0.0.1:7400";

/** UNARY_TIMEOUT_MS bounds each unary call, so an unreachable server fails the command instead of hanging it. */
export const UNARY_TIMEOUT_MS = 10_000;

/** GlobalOptions are the options every command takes. */
export interface GlobalOptions {
  /** server lists the servers, in failover order (--server, repeatable or comma-separated; MAXINE_ADDR). */
  readonly server: readonly string[];
  /** namespace is the namespace to act in (--namespace; MAXINE_NAMESPACE); "" is the server's default. */
  readonly namespace: string;
  /** output is the format asked for (--output; MAXINE_OUTPUT), undefined when neither says. */
  readonly output: "table" | "json" | undefined;
  /** credentials are what every call presents: a bearer token and TLS settings (--token/--token-file, --cacert/--cert/--key). */
  readonly credentials: Credentials;
}

/** Credentials are the SDK's credential options, as the CLI's flags give them. */
export interface Credentials {
  readonly token?: TokenSource;
  readonly tls?: TlsOptions;
}

/** CredentialFlags are the raw values of the credential flags (each from its flag, else its environment variable). */
export interface CredentialFlags {
  readonly token?: string;
  readonly tokenFile?: string;
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
}

/** readFlagFile reads a file a flag names, failing as a usage error naming the flag. */
function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw usage(`${flag}: cannot read ${JSON.stringify(path)} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** tokenOfFile reads a token file: its text without surrounding whitespace, never shown in errors. */
function tokenOfFile(path: string): string {
  const token = readFlagFile("--token-file", path).trim();
  if (token === "") throw usage(`--token-file: ${JSON.stringify(path)} holds no token`);
  return token;
}

/**
 * credentialsOf turns the credential flags into the SDK's options. A token
 * file is read again before every call (a rotated token is picked up by a
 * long watch or register); TLS files are read once. servers must all be
 * https:// when TLS files are given.
 */
export function credentialsOf(f: CredentialFlags, servers: readonly string[]): Credentials {
  if (f.token !== undefined && f.tokenFile !== undefined) throw usage("--token and --token-file: give one, not both");
  if (f.token !== undefined && (f.token === "" || /[\x00-\x1f\x7f]/.test(f.token))) {
    throw usage("--token: must be a non-empty string without control characters (the token itself is not shown)");
  }
  let token: TokenSource | undefined = f.token;
  if (f.tokenFile !== undefined) {
    const path = f.tokenFile;
    tokenOfFile(path); // fail now, before any call, when it cannot be read
    token = () => tokenOfFile(path);
  }
  if ((f.cert === undefined) !== (f.key === undefined)) throw usage("--cert and --key go together (mTLS needs both)");
  let tls: TlsOptions | undefined;
  if (f.cacert !== undefined || f.cert !== undefined) {
    const plain = servers.find((s) => !s.startsWith("https://"));
    if (plain !== undefined) throw usage(`--cacert, --cert and --key need https:// servers, got ${plain}`);
    tls = {
      ...(f.cacert !== undefined ? { ca: readFlagFile("--cacert", f.cacert) } : {}),
      ...(f.cert !== undefined ? { cert: readFlagFile("--cert", f.cert), key: readFlagFile("--key", f.key!) } : {}),
    };
  }
  return { ...(token !== undefined ? { token } : {}), ...(tls !== undefined ? { tls } : {}) };
}

/** serverUrl reads one --server value: an http:// or https:// URL, or host:port (http:// is then assumed). */
export function serverUrl(value: string): string {
  const text = value.includes("://") ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`--server: not a URL or host:port: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw usage(`--server: only http:// and https:// are supported, got ${JSON.stringify(value)}`);
  return url.origin;
}

/** serversOf splits and normalizes --server values (each may list several, comma-separated). */
export function serversOf(values: readonly string[]): string[] {
  const urls = values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "").map(serverUrl);
  return urls.length > 0 ? urls : [DEFAULT_SERVER];
}

/** Connection is the clients a command uses, failing over between the servers given. */
export interface Connection {
  readonly registry: MaxineClient;
  /** config is the service configuration client (maxine.config.v1.ConfigService) on the same servers. */
  readonly config: ConfigClient;
  /**
   * once runs a one-shot call (a unary RPC, a snapshot), trying the next
   * server when one is gone, draining or unreachable (the SDK's failover
   * codes): the SDK's failover transport moves on after a failed call but
   * fails that call, which Session and Watcher retry and a command must too.
   */
  once<T>(call: () => Promise<T>): Promise<T>;
  /** healthOf is a grpc.health.v1 client of one server (no failover: health is asked of each). */
  healthOf(server: string): Client<typeof Health>;
}

/** connect builds the clients for opts.server (gRPC over HTTP/2, as the SDK does by default). */
export function connect(opts: GlobalOptions): Connection {
  return {
    registry: createClient(RegistryService, createMaxineTransport({ baseUrl: opts.server, ...opts.credentials })),
    config: createConfigClient({ baseUrl: opts.server, ...opts.credentials }),
    async once(call) {
      for (let left = opts.server.length - 1; ; left--) {
        try {
          return await call();
        } catch (err) {
          if (left === 0 || !(err instanceof ConnectError) || !FAILOVER_CODES.has(err.code)) throw err;
        }
      }
    },
    healthOf: (server) => createClient(Health, createMaxineTransport({ baseUrl: server, ...opts.credentials })),
  };
}
