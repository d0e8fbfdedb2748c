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

/** BidiCall is one open bidirectional call: the framing feeds it the client's messages. */
export interface BidiCall {
  receive(req: unknown): void;
  /** inputEnded: the client half-closed. */
  inputEnded(): void;
  /** fail ends the call with a framing error (a message that could not be read). */
  fail(err: unknown): void;
  /** done settles when the call ends. */
  readonly done: Promise<void>;
}

/** BidiHandler opens a bidirectional call. */
export interface BidiHandler {
  readonly kind: "bidi_streaming";
  readonly info: MethodInfo;
  open(ctx: CallContext, out: StreamOutput): BidiCall;
  /** decodeBinary, when set, reads a protobuf request faster than fromBinary (what receive gets). */
  decodeBinary?(bytes: Uint8Array): unknown;
}

/** MethodHandler is one RPC's behaviour, independent of protocol and codec. */
export type MethodHandler = UnaryHandler | ServerStreamHandler | BidiHandler;

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
  const kind: MethodKind =
    m.methodKind === "unary" ? "unary" : m.methodKind === "server_streaming" ? "server_streaming" : "bidi_streaming";
  return { service: desc.typeName, name, path: `/${desc.typeName}/${name}`, kind, input: m.input as DescMessage, output: m.output as DescMessage };
}
