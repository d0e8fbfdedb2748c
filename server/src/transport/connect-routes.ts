import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, createContextValues, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import type { ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { CallContext, Outgoing, Protocol, ResponseMetadata } from "../rpc/context.js";
import type { CallInit, Pipeline } from "../rpc/pipeline.js";
import type { MethodHandler, Service } from "../rpc/service.js";
import type { StreamOutput } from "../rpc/stream-output.js";
import type { Connection, Connections } from "../rpc/connections.js";
import { fileRegistry } from "./codec.js";
import { framingOnly } from "./exchange.js";
import { peerIdentityOf } from "./peer-identity.js";

// connect-es as a framing: its routes serve what the fast framing leaves
// (GET requests, gRPC-Web text) and, with MAXINE_FAST_PATH off, every call,
// as the reference the fast framing is tested against. Each route hands its
// call to the same pipeline and handlers; connect-es only frames.

interface Peer {
  readonly connection: Connection;
  readonly peer: string;
}

const peerKey = createContextKey<Peer | undefined>(undefined, { description: "maxine peer" });

/** peerValues builds the adapter's contextValues: each request's connection and peer address. */
export function peerValues(connections: Connections): NonNullable<ConnectNodeAdapterOptions["contextValues"]> {
  return (req) => {
    const owner = "stream" in req ? (req.stream.session ?? req.socket) : req.socket;
    const connection = connections.ofOwner(owner, () => peerIdentityOf(req.socket));
    return createContextValues().set(peerKey, { connection, peer: req.socket?.remoteAddress ?? "" });
  };
}

const PROTOCOLS: Record<string, Protocol> = { connect: "connect", grpc: "grpc", "grpc-web": "grpc-web" };

function initOf(handler: MethodHandler, hctx: HandlerContext): CallInit {
  const peer = hctx.values.get(peerKey);
  if (peer === undefined) throw new Error("peer context missing: mount routes with peerValues");
  return {
    method: handler.info,
    protocol: PROTOCOLS[hctx.protocolName] ?? "connect",
    request: { header: (name) => hctx.requestHeader.get(name) ?? undefined, headers: () => requestHeaders(hctx.requestHeader) },
    url: hctx.url,
    peer: peer.peer,
    connection: peer.connection,
    timeoutMs: hctx.timeoutMs(),
  };
}

/** requestHeaders lists the request's headers as the direct framing does: the framing's own (pseudo-headers, te) left out. */
function* requestHeaders(h: Headers): Generator<[string, string]> {
  for (const [name, value] of h) if (!framingOnly(name)) yield [name, value];
}

/** connectRoutes mounts every service of the pipeline on connect-es, each method calling its handler through the pipeline. */
export function connectRoutes(pipeline: Pipeline, services: readonly Service[]): (router: ConnectRouter) => void {
  return (router) => {
    for (const s of services) {
      const impl: Record<string, unknown> = {};
      for (const h of s.methods) impl[h.info.name.charAt(0).toLowerCase() + h.info.name.slice(1)] = routeOf(pipeline, h);
      // JSON's google.protobuf.Any needs the types of the service's file and its imports.
      router.service(s.desc as never, impl as never, { jsonOptions: { registry: fileRegistry(s.desc.file) } });
    }
  };
}

function routeOf(pipeline: Pipeline, handler: MethodHandler): unknown {
  switch (handler.kind) {
    case "unary":
      return (req: Message, hctx: HandlerContext) => answerOnce(pipeline, hctx, initOf(handler, hctx), (c) => handler.handle(c, req));
    case "client_streaming":
      return (requests: AsyncIterable<Message>, hctx: HandlerContext) =>
        answerOnce(pipeline, hctx, initOf(handler, hctx), (c) => handler.handle(c, requests));
    case "server_streaming":
      return async function* (req: Message, hctx: HandlerContext) {
        const out = new QueueOutput();
        const { ctx, done } = pipeline.start(initOf(handler, hctx), (c) => handler.run(c, req, out));
        const off = link(hctx, ctx.signal);
        try {
          yield* out.drain(done, () => copyHeader(ctx, hctx));
        } finally {
          off();
          copyTrailer(ctx, hctx);
          ctx.signal.abort(new ConnectError("the client cancelled the call", Code.Canceled));
        }
      };
    case "bidi_streaming":
      return async function* (requests: AsyncIterable<Message>, hctx: HandlerContext) {
        const out = new QueueOutput();
        const { ctx, done } = pipeline.start(initOf(handler, hctx), (c) => {
          const call = handler.open(c, out);
          void (async () => {
            try {
              for await (const r of requests) {
                if (c.signal.aborted) return;
                await out.inputAllowed();
                call.receive(r);
              }
              call.inputEnded();
            } catch (err) {
              call.fail(err);
            }
          })();
          return out.closed();
        });
        const off = link(hctx, ctx.signal);
        try {
          yield* out.drain(done, () => copyHeader(ctx, hctx));
        } finally {
          off();
          copyTrailer(ctx, hctx);
          ctx.signal.abort(new ConnectError("the client cancelled the call", Code.Canceled));
        }
      };
  }
}

/** copyHeader hands the response headers the handler set to connect-es, which sends them with the first answer (or the status). */
function copyHeader(meta: ResponseMetadata, hctx: HandlerContext): void {
  meta.headerIfSet?.forEach((v, k) => hctx.responseHeader.append(k, v));
}

/** copyTrailer hands the response trailers the handler set to connect-es. */
function copyTrailer(meta: ResponseMetadata, hctx: HandlerContext): void {
  meta.trailerIfSet?.forEach((v, k) => hctx.responseTrailer.append(k, v));
}

/** answerOnce runs a call with one answer (unary, client-streaming) through the pipeline and hands connect-es its message and metadata. */
async function answerOnce(pipeline: Pipeline, hctx: HandlerContext, init: CallInit, handle: (c: CallContext) => Outgoing | Promise<Outgoing>): Promise<Message> {
  const { ctx, done } = pipeline.start(init, async (c) => handle(c));
  const off = link(hctx, ctx.signal);
  try {
    return ((await done) as Outgoing).message();
  } finally {
    off();
    copyHeader(ctx, hctx);
    copyTrailer(ctx, hctx);
  }
}

function link(hctx: HandlerContext, signal: { abort(reason: unknown): void }): () => void {
  // connect-es aborts with a ConnectError (deadline, shutdown) or, when the
  // client goes away, a plain AbortError: that is a cancel, not a fault.
  const onAbort = (): void => signal.abort(ConnectError.from(hctx.signal.reason, Code.Canceled));
  if (hctx.signal.aborted) onAbort();
  else hctx.signal.addEventListener("abort", onAbort, { once: true });
  return () => hctx.signal.removeEventListener("abort", onAbort);
}

/** MAX_QUEUED bounds the answers a connect-es stream holds before its call waits for the client (backpressure). */
const MAX_QUEUED = 256;

/**
 * QueueOutput is a StreamOutput read by an async generator: connect-es pulls
 * the next answer when the client can take it, so answers queued past
 * MAX_QUEUED make the call wait (flush answers false) until it drains.
 */
class QueueOutput implements StreamOutput {
  private readonly queued: Message[] = [];
  /** sizes are the queued answers' encoded sizes (when known), for buffered. */
  private readonly sizes: number[] = [];
  private queuedBytes = 0;
  private cutOff = false;
  private wake: (() => void) | undefined;
  private writable: Array<() => void> = [];
  private paused: Promise<void> | undefined;
  private resume: (() => void) | undefined;

  /** sendHeader does nothing: connect-es sends the headers with the first answer or the status. */
  sendHeader(): void {}

  push(answer: Outgoing): boolean {
    if (this.cutOff) return false;
    const size = answer.frame?.().length ?? answer.bytes?.().length ?? 0;
    this.queued.push(answer.message());
    this.sizes.push(size);
    this.queuedBytes += size;
    return this.queued.length < MAX_QUEUED;
  }

  buffered(): number {
    return this.queuedBytes;
  }

  /** cut drops the queued answers; the call then ends with its error (what connect-es already wrote stays within Node's stream buffer). */
  cut(): void {
    this.cutOff = true;
    this.queued.length = 0;
    this.sizes.length = 0;
    this.queuedBytes = 0;
    for (const fn of this.writable.splice(0)) fn();
    this.notify();
  }

  flush(): boolean {
    this.notify();
    return this.queued.length < MAX_QUEUED;
  }

  whenWritable(fn: () => void): void {
    this.writable.push(fn);
  }

  pauseInput(): void {
    this.paused ??= new Promise((resolve) => (this.resume = resolve));
  }

  resumeInput(): void {
    this.resume?.();
    this.paused = undefined;
    this.resume = undefined;
  }

  private closedWith: { err: unknown } | undefined;
  private onClose: ((err: unknown) => void) | undefined;

  close(err?: unknown): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = { err };
    this.onClose?.(err);
  }

  /** closed settles when a bidirectional call closes its output (close): resolved for a clean end, rejected with its error. */
  closed(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.onClose = (err) => (err === undefined ? resolve() : reject(err));
      if (this.closedWith !== undefined) this.onClose(this.closedWith.err);
    });
  }

  /** inputAllowed resolves when the call reads input again. */
  inputAllowed(): Promise<void> {
    return this.paused ?? Promise.resolve();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** drain yields every answer until the call ends, then returns or throws as it ended; beforeHeaders runs before the first answer or the end, when connect-es sends the headers. */
  async *drain(done: Promise<unknown>, beforeHeaders: () => void): AsyncGenerator<Message> {
    let headers = false;
    let ended: { err?: unknown } | undefined;
    done.then(
      () => {
        ended = {};
        this.notify();
      },
      (err: unknown) => {
        ended = { err };
        this.notify();
      },
    );
    for (;;) {
      while (this.queued.length > 0) {
        if (!headers) {
          headers = true;
          beforeHeaders();
        }
        this.queuedBytes -= this.sizes.shift()!;
        yield this.queued.shift()!;
      }
      for (const fn of this.writable.splice(0)) fn();
      if (this.queued.length > 0) continue;
      if (ended !== undefined) {
        if (!headers) {
          headers = true;
          beforeHeaders();
        }
        if (ended.err !== undefined) throw ended.err;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
