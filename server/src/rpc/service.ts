import type { DescMessage, DescService, Message } from "@bufbuild/protobuf";
import type { CallContext, MethodInfo, MethodKind, Outgoing } from "./context.js";
import type { StreamOutput } from "./stream-output.js";

/** UnaryHandler answers one request. */
export interface UnaryHandler {
  readonly kind: "unary";
  readonly info: MethodInfo;
  handle(ctx: CallContext, req: Message): Outgoing | Promise<Outgoing>;
  /** cacheRequests: the handler only reads its request, so one decoded request may serve identical request bodies. */
  readonly cacheRequests?: boolean;
}

/** ServerStreamHandler answers one request with a stream; it resolves when the stream ends. */
export interface ServerStreamHandler {
  readonly kind: "server_streaming";
  readonly info: MethodInfo;
  run(ctx: CallContext, req: Message, out: StreamOutput): Promise<void>;
}

/**
 * ClientStreamHandler answers a stream of requests with one answer: requests
 * yields the client's messages until it half-closes (and throws what ended
 * the stream otherwise: a bad message, a cancel).
 */
export interface ClientStreamHandler {
  readonly kind: "client_streaming";
  readonly info: MethodInfo;
  handle(ctx: CallContext, requests: AsyncIterable<Message>): Promise<Outgoing>;
}

/**
 * BidiCall is one open bidirectional call: the framing feeds it the
 * client's messages; the call ends itself with its StreamOutput's close.
 */
export interface BidiCall {
  receive(req: unknown): void;
  /** inputEnded: the client half-closed. */
  inputEnded(): void;
  /** fail ends the call with a framing error (a message that could not be read). */
  fail(err: unknown): void;
}

/** BidiHandler opens a bidirectional call. */
export interface BidiHandler {
  readonly kind: "bidi_streaming";
  readonly info: MethodInfo;
  open(ctx: CallContext, out: StreamOutput): BidiCall;
  /**
   * deferHeaders keeps the response headers until the first answer, an
   * explicit out.sendHeader() or the end, so that the handler can set them
   * from what the client sends (as connect-go does); by default they are
   * sent as soon as the call opens.
   */
  readonly deferHeaders?: boolean;
  /** decodeBinary, when set, reads a protobuf request faster than fromBinary (what receive gets). */
  decodeBinary?(bytes: Uint8Array): unknown;
}

/** MethodHandler is one RPC's behaviour, independent of protocol and codec. */
export type MethodHandler = UnaryHandler | ServerStreamHandler | ClientStreamHandler | BidiHandler;

/**
 * Service is a table of handlers, mounted on the pipeline by path. The
 * registry, and later health, reflection or test services, are all
 * Services: adding one touches no framing code.
 */
export interface Service {
  readonly desc: DescService;
  readonly methods: readonly MethodHandler[];
}

/** methodInfo describes method name of desc, for a handler table. */
export function methodInfo(desc: DescService, name: string): MethodInfo {
  const m = desc.methods.find((x) => x.name === name);
  if (m === undefined) throw new Error(`${desc.typeName} has no method ${name}`);
  const kind: MethodKind = m.methodKind;
  return { service: desc.typeName, name, path: `/${desc.typeName}/${name}`, kind, input: m.input as DescMessage, output: m.output as DescMessage };
}
