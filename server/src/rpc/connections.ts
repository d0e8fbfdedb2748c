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

/**
 * Connections finds the Connection of a call: one per HTTP/2 session or
 * HTTP/1.1 socket, forgotten with it. Both framings (Maxine's and
 * connect-es's) share one, so their calls count against the same limits.
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

  /** ofOwner returns the Connection of a transport object (an HTTP/2 session or a socket), made on its first call and forgotten with it. */
  ofOwner(owner: object): Connection {
    let conn = this.byTransport.get(owner);
    if (conn === undefined) this.byTransport.set(owner, (conn = new Connection(this.limits, this.buffered)));
    return conn;
  }
}
