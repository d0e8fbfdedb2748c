import type { DescMessage, Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../domain/logger.js";
import type { CallContext, Outgoing, ResponseMetadata } from "../rpc/context.js";
import { toConnectError } from "../rpc/errors.js";
import type { Pipeline } from "../rpc/pipeline.js";
import type { BidiHandler, ClientStreamHandler, MethodHandler, UnaryHandler } from "../rpc/service.js";
import type { StreamOutput } from "../rpc/stream-output.js";
import { eachChunk } from "./body.js";
import type { ByteBudget } from "../rpc/byte-budget.js";
import type { Codec } from "./codec.js";
import type { Connections } from "../rpc/connections.js";
import { EnvelopeReader, FLAG_COMPRESSED, gunzip } from "./envelope.js";
import type { Exchange } from "./exchange.js";
import type { Framing } from "./protocols.js";
import type { RequestCache } from "./request-cache.js";
import { RequestStream } from "./request-stream.js";
import type { Shutdown } from "./shutdown.js";

/** ServeDeps are what the framing serves calls with. */
export interface ServeDeps {
  readonly pipeline: Pipeline;
  readonly connections: Connections;
  readonly maxMessageBytes: number;
  readonly shutdown: Shutdown;
  readonly requests: RequestCache;
  readonly log: Logger;
}

/** BATCH_BYTES bounds one stream write: answers queued together go out in one write up to this size. */
const BATCH_BYTES = 64 * 1024;

/**
 * serve runs one call of handler, framed by framing, over ex: it reads the
 * request (enveloped or whole, decompressed, within the message and
 * buffering limits), runs the call through the pipeline's interceptor chain,
 * and writes its answers and status. Protocols differ only in framing;
 * everything a call does happens in the handler, the same for all.
 */
export function serve(deps: ServeDeps, ex: Exchange, framing: Framing, handler: MethodHandler): void {
  const timeout = framing.timeout(ex);
  const connection = deps.connections.ofOwner(ex.owner);
  const init = {
    method: handler.info,
    protocol: framing.protocol,
    request: ex,
    peer: ex.peer,
    connection,
    timeoutMs: timeout.ms,
    timeoutError: timeout.error,
  };
  const body = (ctx: CallContext): BodyReader => new BodyReader(ex, framing, deps.maxMessageBytes, ctx.connection.buffered);
  let run: (ctx: CallContext) => Promise<unknown>;
  switch (handler.kind) {
    case "unary":
      run = (ctx) =>
        body(ctx)
          .one("unary")
          .then((bytes) => {
            // Discover answers at once: encoded in the same turn, no promise more
            const answer = handler.handle(ctx, decodeRequest(deps, handler, framing.codec, bytes));
            return answer instanceof Promise ? answer.then((a) => encodeAnswer(deps, framing, handler, a)) : encodeAnswer(deps, framing, handler, answer);
          });
      break;
    case "client_streaming":
      run = async (ctx) => encodeAnswer(deps, framing, handler, await handler.handle(ctx, readStream(handler, framing, body(ctx))));
      break;
    case "server_streaming":
      run = async (ctx) => {
        const req = framing.codec.decode(handler.info.input, await body(ctx).one("server-streaming"));
        return handler.run(ctx, req, new ExchangeOutput(ex, framing, handler.info.output, deps.maxMessageBytes, ctx as CallContext & ResponseMetadata));
      };
      break;
    case "bidi_streaming":
      run = (ctx) => runBidi(handler, ctx, ex, framing, body(ctx), deps.maxMessageBytes);
      break;
  }
  const { ctx, done } = deps.pipeline.start(init, run);
  // A unary call's answer is computed whether or not its client waits for
  // it (the answer is then dropped); streams end when their client goes.
  if (handler.kind !== "unary") ex.onGone(() => ctx.signal.abort(new ConnectError("the client cancelled the call", Code.Canceled)));
  const offShutdown = handler.kind === "unary" || handler.kind === "client_streaming" ? undefined : deps.shutdown.onShutdown((reason) => ctx.signal.abort(reason));
  done.then(
    (answer) => {
      offShutdown?.();
      if (ex.gone) return;
      if (handler.kind === "unary" || handler.kind === "client_streaming") framing.answer(ex, answer as Uint8Array, ctx);
      else framing.finish(ex, undefined, ctx);
    },
    (err: unknown) => {
      offShutdown?.();
      if (!ex.gone) framing.finish(ex, toConnectError(err), ctx);
    },
  );
}

/** failCall answers a call that cannot be served (an unknown method) with err's status, without running any handler. */
export function failCall(ex: Exchange, framing: Framing, err: ConnectError): void {
  framing.finish(ex, err);
}

/** encodeAnswer encodes a call's one answer in the framing's codec (enveloped when streamed), within MAXINE_MAX_MESSAGE_BYTES. */
function encodeAnswer(deps: ServeDeps, framing: Framing, handler: UnaryHandler | ClientStreamHandler, answer: Outgoing): Uint8Array {
  const out = handler.info.output;
  const bytes = framing.streamed ? framing.codec.frame(out, answer) : framing.codec.encode(out, answer);
  return checkSize(bytes, framing.streamed ? 5 : 0, deps.maxMessageBytes);
}

/** checkSize refuses an answer larger than MAXINE_MAX_MESSAGE_BYTES (its envelope of prefix bytes aside), on every protocol. */
function checkSize(bytes: Uint8Array, prefix: number, maxBytes: number): Uint8Array {
  if (bytes.length - prefix > maxBytes) {
    throw new ConnectError(
      `response: a message of ${bytes.length - prefix} bytes exceeds the limit of ${maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`,
      Code.ResourceExhausted,
    );
  }
  return bytes;
}

/** decodeRequest decodes a unary request, from the decoded-request cache when its handler allows. */
function decodeRequest(deps: ServeDeps, handler: UnaryHandler, codec: Codec, bytes: Uint8Array): Message {
  if (handler.cacheRequests !== true) return codec.decode(handler.info.input, bytes);
  return deps.requests.decode(handler, codec, bytes);
}

/** readStream hands a client stream's messages, decoded, to a client-streaming handler as they arrive. */
function readStream(handler: ClientStreamHandler, framing: Framing, body: BodyReader): RequestStream {
  const requests = new RequestStream(
    () => body.pause(),
    () => body.resume(),
  );
  body.each(
    (bytes) => requests.push(framing.codec.decode(handler.info.input, bytes)),
    (err) => requests.end(err),
  );
  return requests;
}

/**
 * runBidi opens a bidirectional call and feeds it the client's messages as
 * they arrive; the call answers through an ExchangeOutput and ends however
 * it ends (half-close, cancel, deadline, shutdown, a bad message).
 */
function runBidi(handler: BidiHandler, ctx: CallContext, ex: Exchange, framing: Framing, body: BodyReader, maxBytes: number): Promise<void> {
  const call = handler.open(ctx, new ExchangeOutput(ex, framing, handler.info.output, maxBytes, ctx as CallContext & ResponseMetadata));
  if (handler.deferHeaders !== true) framing.start(ex, ctx as CallContext & ResponseMetadata);
  const decode =
    framing.codec.name === "proto" && handler.decodeBinary !== undefined
      ? (bytes: Uint8Array): unknown => {
          try {
            return handler.decodeBinary!(bytes);
          } catch (err) {
            throw new ConnectError(`request: not a valid ${handler.info.input.typeName}: ${(err as Error).message}`, Code.InvalidArgument);
          }
        }
      : (bytes: Uint8Array): unknown => framing.codec.decode(handler.info.input, bytes);
  const stop = body.each(
    (bytes) => call.receive(decode(bytes)),
    (err) => (err === undefined ? call.inputEnded() : call.fail(err)),
  );
  return call.done.finally(stop);
}

/**
 * BodyReader reads a request body: enveloped messages (streamed
 * protocols) or one whole body (Connect unary), within
 * MAXINE_MAX_MESSAGE_BYTES and the connection's buffering budget.
 */
class BodyReader {
  constructor(
    private readonly ex: Exchange,
    private readonly framing: Framing,
    private readonly maxBytes: number,
    private readonly budget: ByteBudget,
  ) {}

  pause(): void {
    this.ex.body.pause();
  }

  resume(): void {
    this.ex.body.resume();
  }

  /** one reads the body's one message (of a unary or server-streaming method); missing or extra messages are answered as connect-es answers them. */
  one(kind: "unary" | "server-streaming"): Promise<Uint8Array> {
    // Plain promises, not async functions: this is every unary call's path,
    // and each async layer costs a promise and a microtask.
    let encoding: "identity" | "gzip";
    try {
      encoding = this.framing.requestEncoding(this.ex);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.framing.streamed) return this.whole(encoding);
    const reader = new EnvelopeReader(this.maxBytes, this.budget, encoding);
    let first: Uint8Array | undefined;
    let count = 0;
    return eachChunk(this.ex.body, (chunk) => {
      for (const e of reader.push(chunk)) {
        if (count++ === 0) first = checked(e.flags, e.data);
      }
    }).then(
      () => {
        const pending = reader.pending;
        reader.close();
        if (pending) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
        if (count === 0) throw new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
        if (count > 1) throw new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);
        return first!;
      },
      (err: unknown) => {
        reader.close();
        throw err;
      },
    );
  }

  /** each hands every message to onMessage as it arrives, then calls onEnd (with an error for a bad body); the returned function stops reading. */
  each(onMessage: (bytes: Uint8Array) => void, onEnd: (err?: unknown) => void): () => void {
    const body = this.ex.body;
    let reader: EnvelopeReader;
    try {
      reader = new EnvelopeReader(this.maxBytes, this.budget, this.framing.requestEncoding(this.ex));
    } catch (err) {
      onEnd(err);
      return () => {};
    }
    let stopped = false;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      body.off("data", onData);
      body.off("end", onBodyEnd);
      reader.close();
    };
    const onData = (chunk: Buffer): void => {
      try {
        for (const e of reader.push(chunk)) {
          if (stopped) return;
          onMessage(checked(e.flags, e.data));
        }
      } catch (err) {
        stop();
        onEnd(err);
      }
    };
    const onBodyEnd = (): void => {
      const pending = reader.pending;
      stop();
      onEnd(pending ? new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument) : undefined);
    };
    body.on("data", onData);
    body.once("end", onBodyEnd);
    return stop;
  }

  private whole(encoding: "identity" | "gzip"): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    let size = 0;
    const release = (): void => {
      for (const c of chunks) this.budget.release(c.length);
    };
    return eachChunk(this.ex.body, (chunk) => {
      size += chunk.length;
      if (size > this.maxBytes) {
        throw new ConnectError(`request: the message exceeds the limit of ${this.maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
      }
      this.budget.reserve(chunk.length);
      chunks.push(chunk);
    }).then(
      () => {
        release();
        const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
        return encoding === "gzip" ? gunzip(bytes, this.maxBytes) : bytes;
      },
      (err: unknown) => {
        release();
        throw err;
      },
    );
  }
}

/** checked refuses a client message with flags other than compression (trailer or end-of-stream frames are the server's). */
function checked(flags: number, data: Uint8Array): Uint8Array {
  if ((flags & ~FLAG_COMPRESSED) !== 0) {
    throw new ConnectError(`protocol error: a request message with flags 0x${flags.toString(16)}`, Code.InvalidArgument);
  }
  return data;
}

/**
 * ExchangeOutput writes a streaming call's answers, enveloped in the
 * framing's codec; the response headers go with the first flush.
 */
class ExchangeOutput implements StreamOutput {
  private parts: Uint8Array[] = [];
  private size = 0;

  constructor(
    private readonly ex: Exchange,
    private readonly framing: Framing,
    private readonly output: DescMessage,
    private readonly maxBytes: number,
    private readonly meta: ResponseMetadata,
  ) {}

  sendHeader(): void {
    if (!this.ex.gone && !this.ex.headersSent) this.framing.start(this.ex, this.meta);
  }

  push(answer: Outgoing): boolean {
    const frame = checkSize(this.framing.codec.frame(this.output, answer), 5, this.maxBytes);
    this.parts.push(frame);
    this.size += frame.length;
    return this.size < BATCH_BYTES;
  }

  flush(): boolean {
    if (this.parts.length === 0) return true;
    const out = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.size);
    this.parts = [];
    this.size = 0;
    if (this.ex.gone) return true;
    if (!this.ex.headersSent) this.framing.start(this.ex, this.meta);
    return this.ex.write(out);
  }

  whenWritable(fn: () => void): void {
    this.ex.whenWritable(fn);
  }

  pauseInput(): void {
    this.ex.body.pause();
  }

  resumeInput(): void {
    this.ex.body.resume();
  }
}
