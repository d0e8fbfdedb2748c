import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "../domain/logger.js";
import type { CallContext, Outgoing, ResponseMetadata } from "../rpc/context.js";
import { toConnectError } from "../rpc/errors.js";
import { LATER, type CallRunner, type Pipeline, type RunningCall } from "../rpc/pipeline.js";
import type { BidiCall, BidiHandler, ClientStreamHandler, MethodHandler, UnaryHandler } from "../rpc/service.js";
import type { StreamOutput } from "../rpc/stream-output.js";
import { eachChunk } from "./body.js";
import type { ByteBudget } from "../rpc/byte-budget.js";
import type { Codec } from "./codec.js";
import type { Connections } from "../rpc/connections.js";
import { EnvelopeReader, FLAG_COMPRESSED, gunzip } from "./envelope.js";
import type { Exchange } from "./exchange.js";
import { peerIdentityOf } from "./peer-identity.js";
import type { Framing } from "./protocols.js";
import type { RequestCache } from "./request-cache.js";
import { RequestStream } from "./request-stream.js";
import type { Shutdown } from "./shutdown.js";

/** ServeDeps are what the framing serves calls with. */
export interface ServeDeps {
  readonly pipeline: Pipeline;
  readonly connections: Connections;
  /** maxMessageBytes bounds a request message (MAXINE_MAX_MESSAGE_BYTES). */
  readonly maxMessageBytes: number;
  /** maxResponseBytes bounds an answer message (MAXINE_MAX_RESPONSE_BYTES). */
  readonly maxResponseBytes: number;
  readonly shutdown: Shutdown;
  readonly requests: RequestCache;
  readonly log: Logger;
}

/** BATCH_BYTES bounds one stream write: answers queued together go out in one write up to this size. */
const BATCH_BYTES = 16 * 1024;

/**
 * serve runs one call of handler, framed by framing, over ex: it reads the
 * request (enveloped or whole, decompressed, within the message and
 * buffering limits), runs the call through the pipeline's interceptor chain,
 * and writes its answers and status. Protocols differ only in framing;
 * everything a call does happens in the handler, the same for all.
 */
export function serve(deps: ServeDeps, ex: Exchange, framing: Framing, handler: MethodHandler): void {
  const timeout = framing.timeout(ex);
  deps.pipeline.run(
    {
      method: handler.info,
      protocol: framing.protocol,
      request: ex,
      peer: ex.peer,
      connection: deps.connections.ofOwner(ex.owner, () => peerIdentityOf(ex.socket)),
      timeoutMs: timeout.ms,
      timeoutError: timeout.error,
    },
    new ServedCall(deps, ex, framing, handler),
  );
}

/**
 * ServedCall is one call as this framing serves it, run through the
 * pipeline: run reads the request and runs the handler, end writes the
 * answer or the status. For a streaming call it is also the call's output
 * (StreamOutput: answers enveloped in the framing's codec, the response
 * headers with the first flush) and, for a bidirectional one, the reader
 * of its request messages. One object, not a closure or an object per
 * role: a Heartbeat stream is held open for hours, tens of thousands at
 * once, and this is most of what each one holds.
 */
class ServedCall implements CallRunner, StreamOutput {
  private ctx!: RunningCall;
  /** queued holds the answers push queued for the next flush: none, one, or several. */
  private queued: Uint8Array | Uint8Array[] | undefined;
  private queuedBytes = 0;
  /** A bidirectional call, and the reader of its request messages while it reads them. */
  private call: BidiCall | undefined;
  private reader: EnvelopeReader | undefined;
  private onData: ((chunk: Buffer) => void) | undefined;
  private onEnd: (() => void) | undefined;

  constructor(
    private readonly deps: ServeDeps,
    private readonly ex: Exchange,
    private readonly framing: Framing,
    private readonly handler: MethodHandler,
  ) {}

  run(ctx: RunningCall): unknown {
    const { deps, ex, framing, handler } = this;
    this.ctx = ctx;
    const body = new BodyReader(ex, framing, deps.maxMessageBytes, ctx.connection.buffered);
    switch (handler.kind) {
      case "unary":
        // A unary call's answer is computed whether or not its client waits
        // for it (the answer is then dropped); streams end when their client goes.
        return body.one("unary").then((bytes) => {
          // Discover answers at once: encoded in the same turn, no promise more
          const answer = handler.handle(ctx, decodeRequest(deps, handler, framing.codec, bytes));
          return answer instanceof Promise ? answer.then((a) => encodeAnswer(deps, framing, handler, a)) : encodeAnswer(deps, framing, handler, answer);
        });
      case "client_streaming":
        ex.compactHeaders();
        ex.cancelOnGone(ctx.signal);
        return handler.handle(ctx, readStream(handler, framing, body)).then((a) => encodeAnswer(deps, framing, handler, a));
      case "server_streaming":
        ex.compactHeaders();
        ex.cancelOnGone(ctx.signal);
        deps.shutdown.track(ctx.signal);
        return body.one("server-streaming").then((bytes) => handler.run(ctx, framing.codec.decode(handler.info.input, bytes), this));
      case "bidi_streaming": {
        ex.compactHeaders();
        ex.cancelOnGone(ctx.signal);
        deps.shutdown.track(ctx.signal);
        const call = handler.open(ctx, this);
        if (handler.deferHeaders !== true) framing.start(ex, ctx);
        this.read(call, body);
        return LATER;
      }
    }
  }

  end(ctx: CallContext & ResponseMetadata, value: unknown, err: unknown): void {
    const { ex, framing, handler } = this;
    if (handler.kind === "server_streaming" || handler.kind === "bidi_streaming") this.deps.shutdown.untrack(ctx.signal);
    this.stopReading();
    if (ex.gone) return;
    if (err !== undefined) framing.finish(ex, toConnectError(err), ctx);
    else if (handler.kind === "unary" || handler.kind === "client_streaming") framing.answer(ex, value as Uint8Array, ctx);
    else framing.finish(ex, undefined, ctx);
  }

  /**
   * read hands a bidirectional call its request messages as they arrive
   * (enveloped, within MAXINE_MAX_MESSAGE_BYTES and the connection's
   * buffering budget), decoded; a bad frame or message fails the call, the
   * body's end half-closes it.
   */
  private read(call: BidiCall, body: BodyReader): void {
    try {
      this.reader = body.envelopes();
    } catch (err) {
      call.fail(err);
      return;
    }
    this.call = call;
    this.onData = (chunk) => {
      try {
        for (const e of this.reader!.push(chunk)) {
          if (this.reader === undefined) return;
          call.receive(this.decode(checked(e.flags, e.data)));
        }
      } catch (err) {
        this.stopReading();
        call.fail(err);
      }
    };
    this.onEnd = () => {
      const pending = this.reader?.pending === true;
      this.stopReading();
      if (pending) call.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      else call.inputEnded();
    };
    this.ex.body.on("data", this.onData);
    this.ex.body.once("end", this.onEnd);
  }

  private stopReading(): void {
    const reader = this.reader;
    if (reader === undefined) return;
    this.reader = undefined;
    this.ex.body.off("data", this.onData!);
    this.ex.body.off("end", this.onEnd!);
    reader.close();
  }

  private decode(bytes: Uint8Array): unknown {
    const handler = this.handler as BidiHandler;
    if (this.framing.codec.name !== "proto" || handler.decodeBinary === undefined) return this.framing.codec.decode(handler.info.input, bytes);
    try {
      return handler.decodeBinary(bytes);
    } catch (err) {
      throw new ConnectError(`request: not a valid ${handler.info.input.typeName}: ${(err as Error).message}`, Code.InvalidArgument);
    }
  }

  // StreamOutput

  sendHeader(): void {
    if (!this.ex.gone && !this.ex.headersSent) this.framing.start(this.ex, this.ctx);
  }

  push(answer: Outgoing): boolean {
    const frame = checkSize(this.framing.codec.frame(this.handler.info.output, answer), 5, this.deps.maxResponseBytes);
    const q = this.queued;
    if (q === undefined) this.queued = frame;
    else if (Array.isArray(q)) q.push(frame);
    else this.queued = [q, frame];
    this.queuedBytes += frame.length;
    return this.queuedBytes < BATCH_BYTES;
  }

  flush(): boolean {
    const q = this.queued;
    if (q === undefined) return true;
    const out = Array.isArray(q) ? Buffer.concat(q, this.queuedBytes) : q;
    this.queued = undefined;
    this.queuedBytes = 0;
    if (this.ex.gone) return true;
    if (!this.ex.headersSent) this.framing.start(this.ex, this.ctx);
    return this.ex.write(out);
  }

  whenWritable(fn: () => void): void {
    this.ex.whenWritable(fn);
  }

  buffered(): number {
    return this.queuedBytes + (this.ex.gone ? 0 : this.ex.buffered());
  }

  cut(): void {
    this.queued = undefined;
    this.queuedBytes = 0;
    this.ex.cut();
  }

  close(err?: unknown): void {
    this.ctx.complete(undefined, err);
  }

  pauseInput(): void {
    this.ex.body.pause();
  }

  resumeInput(): void {
    this.ex.body.resume();
  }
}

/** failCall answers a call that cannot be served (an unknown method) with err's status, without running any handler. */
export function failCall(ex: Exchange, framing: Framing, err: ConnectError): void {
  framing.finish(ex, err);
}

/** encodeAnswer encodes a call's one answer in the framing's codec (enveloped when streamed), within MAXINE_MAX_RESPONSE_BYTES. */
function encodeAnswer(deps: ServeDeps, framing: Framing, handler: UnaryHandler | ClientStreamHandler, answer: Outgoing): Uint8Array {
  const out = handler.info.output;
  const bytes = framing.streamed ? framing.codec.frame(out, answer) : framing.codec.encode(out, answer);
  return checkSize(bytes, framing.streamed ? 5 : 0, deps.maxResponseBytes);
}

/** checkSize refuses an answer larger than MAXINE_MAX_RESPONSE_BYTES (its envelope of prefix bytes aside), on every protocol. */
function checkSize(bytes: Uint8Array, prefix: number, maxBytes: number): Uint8Array {
  if (bytes.length - prefix > maxBytes) {
    throw new ConnectError(
      `response: a message of ${bytes.length - prefix} bytes exceeds the limit of ${maxBytes} bytes (MAXINE_MAX_RESPONSE_BYTES)`,
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
    return eachChunk(
      this.ex.body,
      (chunk) => {
        for (const e of reader.push(chunk)) {
          if (count++ === 0) first = checked(e.flags, e.data);
        }
      },
      kind === "server-streaming",
    ).then(
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

  /** envelopes makes the reader of this body's enveloped messages (throws for an encoding the framing refuses). */
  envelopes(): EnvelopeReader {
    return new EnvelopeReader(this.maxBytes, this.budget, this.framing.requestEncoding(this.ex));
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
