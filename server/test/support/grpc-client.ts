import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

const PROTO_ROOT = fileURLToPath(new URL("../../../proto", import.meta.url));

/**
 * grpcClient builds an independent gRPC client for RegistryService with
 * @grpc/grpc-js, loading the .proto at run time (no generated code), so the
 * tests check wire compatibility with a different implementation.
 */
export function grpcClient(port: number, options?: grpc.ChannelOptions): grpc.Client & Record<string, any> {
  const def = protoLoader.loadSync("maxine/registry/v1/registry.proto", {
    includeDirs: [PROTO_ROOT],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const Ctor = pkg.maxine.registry.v1.RegistryService as typeof grpc.Client;
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as grpc.Client & Record<string, any>;
}

/** unary promisifies a grpc-js unary call. */
export function unary<T>(client: Record<string, any>, method: string, req: object): Promise<T> {
  return new Promise((resolve, reject) => {
    client[method](req, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res)));
  });
}

/** Collector buffers a grpc-js stream's messages and its end or error. */
export class Collector<T = any, C extends grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<any, T> = grpc.ClientDuplexStream<any, T>> {
  readonly messages: T[] = [];
  error: grpc.ServiceError | undefined;
  ended = false;

  constructor(readonly call: C) {
    call.on("data", (m: T) => this.messages.push(m));
    call.on("error", (e: grpc.ServiceError) => (this.error = e));
    call.on("end", () => (this.ended = true));
  }

  /** waitFor polls until pred holds over the messages (bounded). */
  async waitFor(pred: (m: T[]) => boolean, timeoutMs = 5_000): Promise<T[]> {
    const end = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      if (Date.now() > end) throw new Error(`timed out; got ${JSON.stringify(this.messages)}`);
      if (this.error !== undefined) throw this.error;
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.messages;
  }

  /** closed resolves once the call has ended or failed. */
  async closed(timeoutMs = 5_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.ended && this.error === undefined) {
      if (Date.now() > end) throw new Error("stream did not close");
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}

/**
 * details returns a grpc-js error's message. grpc-js decodes grpc-message
 * with decodeURI, which leaves %3A, %2C and %2F (':' ',' '/') encoded, while
 * the server percent-encodes as the gRPC spec allows; decode the rest here.
 */
export function details(err: unknown): string {
  return decodeURIComponent((err as { details: string }).details);
}
