import { Reason, RegistryError } from "../domain/errors.js";
import { ByteBudget } from "./byte-budget.js";

/** ConnectionLimits bound the long-lived streams one client connection may hold. */
export interface ConnectionLimits {
  readonly maxWatchersPerConnection: number;
  readonly maxHeartbeatsPerConnection: number;
  /** maxBufferedBytesPerConnection bounds the bytes of unfinished request messages one connection may make the server hold. */
  readonly maxBufferedBytesPerConnection: number;
  /** maxWatchersPerPrincipal and maxHeartbeatsPerPrincipal bound the streams one principal holds over all its connections (quotas). */
  readonly maxWatchersPerPrincipal?: number;
  readonly maxHeartbeatsPerPrincipal?: number;
}

type StreamKind = "watchers" | "heartbeats";

/** PrincipalStreams counts the long-lived streams each principal holds, over every connection (quotas). */
class PrincipalStreams {
  private readonly held = { watchers: new Map<string, number>(), heartbeats: new Map<string, number>() };

  constructor(private readonly limits: ConnectionLimits) {}

  acquire(kind: StreamKind, principal: string): void {
    const max = (kind === "watchers" ? this.limits.maxWatchersPerPrincipal : this.limits.maxHeartbeatsPerPrincipal) ?? Number.MAX_SAFE_INTEGER;
    const n = this.held[kind].get(principal) ?? 0;
    if (n >= max) {
      const [what, setting] = kind === "watchers" ? ["watch", "MAXINE_MAX_WATCHERS_PER_PRINCIPAL"] : ["heartbeat", "MAXINE_MAX_HEARTBEATS_PER_PRINCIPAL"];
      throw new RegistryError(Reason.RESOURCE_EXHAUSTED, `${what}: principal ${JSON.stringify(principal)} already holds the maximum of ${max} ${what} streams (${setting})`);
    }
    this.held[kind].set(principal, n + 1);
  }

  release(kind: StreamKind, principal: string): void {
    const n = (this.held[kind].get(principal) ?? 1) - 1;
    if (n <= 0) this.held[kind].delete(principal);
    else this.held[kind].set(principal, n);
  }
}

/** Connection counts one client connection's open streams and the request bytes it makes the server hold. */
export class Connection {
  watchers = 0;
  heartbeats = 0;
  /**
   * peerSilent is set when the server closes the connection because its
   * peer stopped answering PINGs (MAXINE_KEEPALIVE_TIMEOUT): the peer was
   * silent that long already, so its heartbeat streams' instances get no
   * further grace (MAXINE_GRACE is for a client that may be reconnecting).
   */
  peerSilent = false;
  /** buffered is this connection's share of the server's budget for unfinished request messages. */
  readonly buffered: ByteBudget;

  constructor(
    private readonly limits: ConnectionLimits,
    total: ByteBudget,
    private readonly principals: PrincipalStreams,
    /**
     * peerIdentity is the identity of the client's verified TLS certificate
     * (mTLS): its URI SAN (a SPIFFE id), else its DNS SAN, else its subject
     * CN; undefined on cleartext, without a client certificate, or with one
     * that did not verify against MAXINE_TLS_CA. Read once when the
     * connection's first call arrives, the same for every framing; an
     * authentication interceptor maps it to the call's principal.
     */
    readonly peerIdentity: string | undefined = undefined,
  ) {
    this.buffered = new ByteBudget(limits.maxBufferedBytesPerConnection, "MAXINE_MAX_BUFFERED_BYTES_PER_CONNECTION", total);
  }

  /** acquire takes one stream slot of a kind for principal, on this connection and among the principal's, or throws RESOURCE_EXHAUSTED; release must follow. */
  acquire(kind: StreamKind, principal: string): void {
    const max = kind === "watchers" ? this.limits.maxWatchersPerConnection : this.limits.maxHeartbeatsPerConnection;
    if (this[kind] >= max) {
      const [what, setting] = kind === "watchers" ? ["watch", "MAXINE_MAX_WATCHERS_PER_CONNECTION"] : ["heartbeat", "MAXINE_MAX_HEARTBEATS_PER_CONNECTION"];
      throw new RegistryError(Reason.RESOURCE_EXHAUSTED, `${what}: this connection already holds the maximum of ${max} ${what} streams (${setting})`);
    }
    this.principals.acquire(kind, principal);
    this[kind]++;
  }

  release(kind: StreamKind, principal: string): void {
    this[kind]--;
    this.principals.release(kind, principal);
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
  private readonly principals: PrincipalStreams;

  constructor(
    private readonly limits: ConnectionLimits,
    maxBufferedBytes: number,
  ) {
    this.buffered = new ByteBudget(maxBufferedBytes, "MAXINE_MAX_BUFFERED_BYTES");
    this.principals = new PrincipalStreams(limits);
  }

  /**
   * ofOwner returns the Connection of a transport object (an HTTP/2 session
   * or a socket), made on its first call and forgotten with it; identify,
   * called only then, reads its peer identity (see Connection.peerIdentity).
   */
  ofOwner(owner: object, identify?: () => string | undefined): Connection {
    let conn = this.byTransport.get(owner);
    if (conn === undefined) this.byTransport.set(owner, (conn = new Connection(this.limits, this.buffered, this.principals, identify?.())));
    return conn;
  }
}
