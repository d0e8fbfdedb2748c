import type { DescMessage, DescMethodStreaming, DescMethodUnary, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type StreamResponse, type Transport, type UnaryResponse } from "@connectrpc/connect";

type Header = Parameters<Transport["unary"]>[3];

/** FAILOVER_CODES are the errors that make a FailoverTransport move to the next server: the server is gone, draining or unreachable. */
export const FAILOVER_CODES: ReadonlySet<Code> = new Set([Code.Unavailable, Code.Unknown, Code.Internal, Code.Aborted, Code.DeadlineExceeded]);

/**
 * FailoverTransport spreads a client over several Maxine replicas (one
 * registry through Redis). Every call goes to the current replica; a call
 * that fails because of the server (FAILOVER_CODES; of the calls the caller
 * aborted, only those aborted with such a ConnectError, as a Session does
 * when its heartbeats go unanswered) moves the transport on to the next
 * replica, in order, round the list. With several replicas, give a Session
 * an ackTimeoutMs well under half the lease TTL, so that it leaves a hung
 * replica before its leases lapse. The failed call itself still fails:
 * Session and Watcher retry with backoff, so their next stream opens on the
 * next replica (the session re-binds its instances there within the grace,
 * the watcher resumes from its last revision).
 */
export interface FailoverTransport extends Transport {
  /** current is the index, in the list of addresses, of the replica the next call goes to. */
  readonly current: number;
  /** failovers counts how often the transport moved on. */
  readonly failovers: number;
}

/** createFailoverTransport builds a FailoverTransport over transports (one per replica address, in order of preference). */
export function createFailoverTransport(transports: readonly Transport[]): FailoverTransport {
  if (transports.length === 0) throw new TypeError("createFailoverTransport: needs at least one transport");
  let current = 0;
  let failovers = 0;
  const failed = (index: number, err: unknown, signal: AbortSignal | undefined): void => {
    // A call the caller aborted fails over only when the caller gave up on
    // the server (a Session's heartbeat ack timeout: DEADLINE_EXCEEDED), not
    // when it cancelled (close()).
    const cause: unknown = signal?.aborted ? signal.reason : err;
    if (!(cause instanceof ConnectError) && signal?.aborted) return;
    if (!FAILOVER_CODES.has(ConnectError.from(cause).code)) return;
    if (index !== current) return; // a concurrent call already moved on
    current = (current + 1) % transports.length;
    failovers++;
  };
  return {
    get current() {
      return current;
    },
    get failovers() {
      return failovers;
    },
    async unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: Header,
      input: MessageInitShape<I>,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const index = current;
      try {
        return await transports[index]!.unary(method, signal, timeoutMs, header, input, contextValues);
      } catch (err) {
        failed(index, err, signal);
        throw err;
      }
    },
    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: Header,
      input: AsyncIterable<MessageInitShape<I>>,
      contextValues?: ContextValues,
    ): Promise<StreamResponse<I, O>> {
      const index = current;
      let res: StreamResponse<I, O>;
      try {
        res = await transports[index]!.stream(method, signal, timeoutMs, header, input, contextValues);
      } catch (err) {
        failed(index, err, signal);
        throw err;
      }
      const source = res.message;
      async function* watched(): AsyncGenerator<MessageShape<O>> {
        try {
          yield* source;
        } catch (err) {
          failed(index, err, signal);
          throw err;
        }
      }
      return { ...res, message: watched() };
    },
  };
}
