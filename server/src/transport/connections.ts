import { createContextKey, createContextValues } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { Reason, RegistryError } from "../registry/errors.js";

/** ConnectionLimits bound the long-lived streams one client connection may hold. */
export interface ConnectionLimits {
  readonly maxWatchersPerConnection: number;
  readonly maxHeartbeatsPerConnection: number;
}

/** Connection counts one client connection's open streams. */
export class Connection {
  watchers = 0;
  heartbeats = 0;

  constructor(private readonly limits: ConnectionLimits) {}

  /** acquire takes one stream slot of a kind, or throws RESOURCE_EXHAUSTED; release must follow. */
  acquire(kind: "watchers" | "heartbeats"): void {
    const max = kind === "watchers" ? this.limits.maxWatchersPerConnection : this.limits.maxHeartbeatsPerConnection;
    if (this[kind] >= max) {
      const what = kind === "watchers" ? "watch" : "heartbeat";
      throw new RegistryError(Reason.RESOURCE_EXHAUSTED, `${what}: this connection already holds the maximum of ${max} ${what} streams`);
    }
    this[kind]++;
  }

  release(kind: "watchers" | "heartbeats"): void {
    this[kind]--;
  }
}

/** connectionKey carries the caller's Connection in a handler context. */
export const connectionKey = createContextKey<Connection | undefined>(undefined, { description: "maxine connection" });

/**
 * connectionValues builds the adapter's contextValues function: one
 * Connection per HTTP/2 session or HTTP/1.1 socket.
 */
export function connectionValues(limits: ConnectionLimits): NonNullable<ConnectNodeAdapterOptions["contextValues"]> {
  const byTransport = new WeakMap<object, Connection>();
  return (req) => {
    const owner: object = "stream" in req ? req.stream.session ?? req.socket : req.socket;
    let conn = byTransport.get(owner);
    if (conn === undefined) byTransport.set(owner, (conn = new Connection(limits)));
    return createContextValues().set(connectionKey, conn);
  };
}
