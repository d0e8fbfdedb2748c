import { createClient, type Client } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { createMaxineTransport, FAILOVER_CODES, type MaxineClient } from "@maxine/sdk";
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
}

/** serverUrl reads one --server value: a URL, or host:port (http:// is then assumed). */
export function serverUrl(value: string): string {
  const text = value.includes("://") ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw usage(`--server: not a URL or host:port: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "http:") throw usage(`--server: only http:// is supported (TLS is not in the CLI yet), got ${JSON.stringify(value)}`);
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
    registry: createClient(RegistryService, createMaxineTransport({ baseUrl: opts.server })),
    async once(call) {
      for (let left = opts.server.length - 1; ; left--) {
        try {
          return await call();
        } catch (err) {
          if (left === 0 || !(err instanceof ConnectError) || !FAILOVER_CODES.has(err.code)) throw err;
        }
      }
    },
    healthOf: (server) => createClient(Health, createMaxineTransport({ baseUrl: server })),
  };
}
