import http2 from "node:http2";
import { fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape, create } from "@bufbuild/protobuf";
import { grpcFrame } from "./grpc-frame.js";

/**
 * WorkerSession is one HTTP/2 connection to a server of several workers
 * (MAXINE_WORKERS), with the worker that serves it: a connection lives in
 * one worker, so every call on it is served there. A plain node:http2
 * client: Connect JSON for unary calls, gRPC framing (protobuf-es) for
 * streams.
 */
export class WorkerSession {
  private constructor(
    readonly session: http2.ClientHttp2Session,
    /** worker and pid are what /healthz on this connection reported. */
    readonly worker: number,
    readonly pid: number,
  ) {}

  /** open connects to url and asks /healthz on the new connection which worker serves it. */
  static async open(url: string): Promise<WorkerSession> {
    const session = http2.connect(url);
    session.on("error", () => {});
    const health = await new Promise<{ worker: number; pid: number }>((resolve, reject) => {
      const req = session.request({ ":method": "GET", ":path": "/healthz" });
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        try {
          resolve(JSON.parse(body) as { worker: number; pid: number });
        } catch (err) {
          reject(err as Error);
        }
      });
      req.on("error", reject);
      req.end();
    });
    if (typeof health.worker !== "number") throw new Error(`/healthz names no worker: ${JSON.stringify(health)}`);
    return new WorkerSession(session, health.worker, health.pid);
  }

  /** unary makes a Connect JSON call of RegistryService (or of service) and resolves with the answer (HTTP 200) or throws with the body. */
  async unary(method: string, body: object, service = "maxine.registry.v1.RegistryService"): Promise<any> {
    const req = this.session.request({ ":method": "POST", ":path": `/${service}/${method}`, "content-type": "application/json" });
    let status = 0;
    let text = "";
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (d: Buffer) => (text += d.toString()));
    await new Promise<void>((resolve, reject) => {
      req.on("end", () => resolve());
      req.on("error", reject);
      req.end(JSON.stringify(body));
    });
    if (status !== 200) throw new Error(`${method}: HTTP ${status}: ${text}`);
    return JSON.parse(text);
  }

  /** stream opens a gRPC stream of RegistryService; the request side stays open until end() unless endRequest. */
  stream<I extends DescMessage, O extends DescMessage>(method: string, input: I, output: O, first: MessageInitShape<I>, endRequest: boolean): GrpcStream<I, O> {
    return new GrpcStream(this.session, method, input, output, first, endRequest);
  }

  close(): void {
    this.session.close();
  }
}

/** GrpcStream is a raw gRPC call on one HTTP/2 stream: the messages it got, decoded, and its grpc-status. */
export class GrpcStream<I extends DescMessage, O extends DescMessage> {
  readonly messages: MessageShape<O>[] = [];
  status: string | undefined;
  private readonly req: http2.ClientHttp2Stream;
  private buf = Buffer.alloc(0);

  constructor(session: http2.ClientHttp2Session, method: string, private readonly input: I, output: O, first: MessageInitShape<I>, endRequest: boolean) {
    this.req = session.request({ ":method": "POST", ":path": `/maxine.registry.v1.RegistryService/${method}`, "content-type": "application/grpc", te: "trailers" });
    this.req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) this.status = String(h["grpc-status"]);
    });
    this.req.on("trailers", (t) => (this.status = String(t["grpc-status"])));
    this.req.on("error", () => (this.status ??= "reset"));
    this.req.on("close", () => (this.status ??= "closed"));
    this.req.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 5 && this.buf.length >= 5 + this.buf.readUInt32BE(1)) {
        const n = this.buf.readUInt32BE(1);
        this.messages.push(fromBinary(output, this.buf.subarray(5, 5 + n)));
        this.buf = this.buf.subarray(5 + n);
      }
    });
    const frame = grpcFrame(toBinary(input, create(input, first)));
    if (endRequest) this.req.end(frame);
    else this.req.write(frame);
  }

  /** send writes one more request message. */
  send(msg: MessageInitShape<I>): void {
    this.req.write(grpcFrame(toBinary(this.input, create(this.input, msg))));
  }

  /** waitFor waits (bounded) until pred holds over the messages. */
  async waitFor(pred: (m: MessageShape<O>[]) => boolean, timeoutMs = 5_000): Promise<MessageShape<O>[]> {
    const end = Date.now() + timeoutMs;
    while (!pred(this.messages)) {
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms; status ${this.status}; ${this.messages.length} messages`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.messages;
  }

  /** ended waits (bounded) for the call's end and returns its grpc-status. */
  async ended(timeoutMs = 5_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (this.status === undefined) {
      if (Date.now() > end) throw new Error(`the stream did not end in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.status;
  }

  /** cancel resets the stream (RST_STREAM CANCEL), as a client that goes away does. */
  cancel(): void {
    this.req.close(http2.constants.NGHTTP2_CANCEL);
  }
}
