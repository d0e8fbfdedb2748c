import type http2 from "node:http2";
import { createContextKey, createContextValues } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { Reason, RegistryError } from "../domain/errors.js";
import { ByteBudget } from "./byte-budget.js";

/** ConnectionLimits bound the long-lived streams one client connection may hold. */
export interface ConnectionLimits {
  readonly maxWatchersPerConnection: number;
  readonly maxHeartbeatsPerConnection: number;
  /** maxBufferedBytesPerConnection bounds the bytes of unfinished request messages one connection may make the server hold. */
  readonly maxBufferedBytesPerConnection: number;
}

/** Connection counts one client connection's open streams and the request bytes it makes the server hold. */
export class Connection {
  watchers = 0;
  heartbeats = 0;
  /** buffered is this connection's share of the server's budget for unfinished request messages. */
  readonly buffered: ByteBudget;

  constructor(
    private readonly limits: ConnectionLimits,
    total: ByteBudget,
  ) {
    this.buffered = new ByteBudget(limits.maxBufferedBytesPerConnection, "MAXINE_MAX_BUFFERED_BYTES_PER_CONNECTION", total);
  }

  /** acquire takes one stream slot of a kind, or throws RESOURCE_EXHAUSTED; release must follow. */
  acquire(kind: "watchers" | "heartbeats"): void {
    const max = kind === "watchers" ? this.limits.maxWatchersPerConnection : this.limits.maxHeartbeatsPerConnection;
    if (this[kind] >= max) {
      const [what, setting] = kind === "watchers" ? ["watch", "MAXINE_MAX_WATCHERS_PER_CONNECTION"] : ["heartbeat", "MAXINE_MAX_HEARTBEATS_PER_CONNECTION"];
      throw new RegistryError(Reason.RESOURCE_EXHAUSTED, `${what}: this connection already holds the maximum of ${max} ${what} streams (${setting})`);
    }
    this[kind]++;
  }

  release(kind: "watchers" | "heartbeats"): void {
    this[kind]--;
  }
}

/** connectionKey carries the caller's Connection in a handler context. */
export const connectionKey = createContextKey<Connection | undefined>(undefined, { description: "maxine connection" });

/** RequestLike is what identifies a request's connection: its HTTP/2 stream's session, or its socket. */
export type RequestLike = Parameters<NonNullable<ConnectNodeAdapterOptions["contextValues"]>>[0];

/**
 * Connections finds the Connection of a request: one per HTTP/2 session or
 * HTTP/1.1 socket, forgotten with it. The connect-es routes and the gRPC
 * watch fast path share one, so their streams count against the same limits.
 */
export class Connections {
  private readonly byTransport = new WeakMap<object, Connection>();
  /** buffered is the whole server's budget for unfinished request messages (MAXINE_MAX_BUFFERED_BYTES). */
  readonly buffered: ByteBudget;

  constructor(
    private readonly limits: ConnectionLimits,
    maxBufferedBytes: number,
  ) {
    this.buffered = new ByteBudget(maxBufferedBytes, "MAXINE_MAX_BUFFERED_BYTES");
  }

  /** of returns req's Connection, creating it on the connection's first request. */
  of(req: RequestLike): Connection {
    return this.ofOwner("stream" in req ? req.stream.session ?? req.socket : req.socket);
  }

  /** ofStream returns the Connection of an HTTP/2 stream served directly (grpc-fast-path.ts). */
  ofStream(stream: http2.ServerHttp2Stream): Connection {
    return this.ofOwner(stream.session ?? stream);
  }

  /** ofOwner returns the Connection of a transport object (an HTTP/2 session or a socket). */
  ofOwner(owner: object): Connection {
    let conn = this.byTransport.get(owner);
    if (conn === undefined) this.byTransport.set(owner, (conn = new Connection(this.limits, this.buffered)));
    return conn;
  }
}

/** connectionValues builds the adapter's contextValues function, which puts each request's Connection in its context. */
export function connectionValues(connections: Connections): NonNullable<ConnectNodeAdapterOptions["contextValues"]> {
  return (req) => createContextValues().set(connectionKey, connections.of(req));
}
