import { connect as http2Connect, constants as h2 } from "node:http2";
import { connect as tcpConnect, isIP, type Socket } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { HealthCheckRequestSchema, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "@maxine/sdk/gen/grpc/health/v1/health_pb";
import type { CheckSpec } from "../domain/health.js";

/** ProbeOutcome is one probe's result: whether it passed and the readable reason ("HTTP 503 from /healthz"). */
export interface ProbeOutcome {
  readonly pass: boolean;
  readonly message: string;
  /** timedOut is set when the probe failed by its timeout. */
  readonly timedOut?: boolean;
}

/** ProbeTarget is where one probe goes: the address the target policy vetted, the port, and the host name (HTTP Host, TLS-less :authority). */
export interface ProbeTarget {
  readonly address: string;
  readonly port: number;
  readonly host: string;
}

/** Prober runs one probe; the checker injects it so tests of the scheduler can count and hold probes. */
export type Prober = (check: CheckSpec, target: ProbeTarget, signal: AbortSignal) => Promise<ProbeOutcome>;

/** MAX_BODY_BYTES bounds a gRPC check's answer. */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * Probes runs checks against their targets, each over a fresh connection
 * that it always closes. A probe never rejects: a failure is an outcome.
 * The timeout (the checker's signal) ends it wherever it is: connecting,
 * waiting for an answer, or reading it. It keeps each HTTP check's request
 * encoded (built once per check by the composition root's checker).
 */
export class Probes {
  /** requests holds each check's HTTP request bytes, for the Host it was built for. */
  private readonly requests = new WeakMap<CheckSpec, { host: string; bytes: Buffer }>();

  /** probe implements Prober. */
  readonly probe: Prober = (check, target, signal) => {
    switch (check.kind) {
      case "TCP":
        return tcp(target, signal);
      case "HTTP":
        return http(check, target, this.requestBytes(check, target), signal);
      case "GRPC":
        return grpc(check, target, signal);
    }
  };

  private requestBytes(check: CheckSpec, target: ProbeTarget): Buffer {
    const host = hostHeader(target);
    const kept = this.requests.get(check);
    if (kept !== undefined && kept.host === host) return kept.bytes;
    const extra = check.httpMethod === "POST" ? "Content-Length: 0\r\n" : "";
    const bytes = Buffer.from(`${check.httpMethod} ${check.httpPath} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: maxine-health-check\r\nAccept: */*\r\nConnection: close\r\n${extra}\r\n`, "latin1");
    this.requests.set(check, { host, bytes });
    return bytes;
  }
}

function failure(err: unknown): ProbeOutcome {
  const e = err as NodeJS.ErrnoException;
  return { pass: false, message: `connect ${e.code ?? e.message}` };
}

/**
 * connect opens a socket to target that the signal destroys. Not net's own
 * signal option: that one watches the socket's end with stream.finished,
 * which builds an error object for every socket closed before its end (all
 * of a probe's), a few per cent of a probe's CPU.
 */
function connect(target: ProbeTarget, signal: AbortSignal): { socket: Socket; release: () => void } {
  const socket = tcpConnect({ host: target.address, port: target.port });
  const onAbort = (): void => {
    socket.destroy();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  return { socket, release: () => signal.removeEventListener("abort", onAbort) };
}

function tcp(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const { socket, release } = connect(target, signal);
    const done = (o: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      release();
      socket.destroy();
      resolve(o);
    };
    socket.once("connect", () => done({ pass: true, message: `TCP connect to port ${target.port}` }));
    socket.once("error", (err) => done(failure(err)));
    socket.once("close", () => done({ pass: false, message: "aborted" })); // destroyed by the signal: the scheduler has answered already
  });
}

function hostHeader(target: ProbeTarget): string {
  const h = isIP(target.host) === 6 ? `[${target.host}]` : target.host;
  return `${h}:${target.port}`;
}

/** MAX_HEAD_BYTES bounds what an HTTP check reads before it has a status line. */
const MAX_HEAD_BYTES = 16 * 1024;
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})[^\r\n]*\r?\n/;

/**
 * http sends one HTTP/1.1 request (Connection: close) over a plain socket
 * and reads only its status line: a check needs the status and nothing
 * else, and node:http's client (an agent, a request and a response object,
 * header objects) cost most of a probe's CPU at thousands of probes a
 * second (bench/health-checks.mjs). Informational answers (1xx) are
 * skipped; anything that is not an HTTP/1.x status line fails the probe.
 */
function http(check: CheckSpec, target: ProbeTarget, request: Buffer, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let head = "";
    const { socket, release } = connect(target, signal);
    const done = (o: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      release();
      socket.destroy();
      resolve(o);
    };
    socket.setNoDelay(true);
    socket.once("connect", () => socket.write(request));
    socket.once("close", () => done({ pass: false, message: "aborted" }));
    socket.on("data", (chunk: Buffer) => {
      head += chunk.toString("latin1");
      for (;;) {
        const m = STATUS_LINE.exec(head);
        if (m === null) break;
        const status = Number(m[1]);
        if (status >= 200 || status < 100) {
          done({ pass: status >= check.statusMin && status <= check.statusMax, message: `HTTP ${status} from ${check.httpPath}` });
          return;
        }
        // 1xx: skip it and its headers, and read the final answer
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) break;
        head = head.slice(end + 4);
      }
      if (head.length > MAX_HEAD_BYTES || (head.length >= 12 && !/^HTTP\/1\.[01] \d{3}/.test(head))) done({ pass: false, message: "HTTP answer malformed" });
    });
    socket.once("end", () => done({ pass: false, message: head === "" ? "HTTP connection closed with no answer" : "HTTP answer malformed" }));
    socket.once("error", (err) => done(failure(err)));
  });
}

/** grpcStatusNames names grpc-status codes in messages. */
const GRPC_CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

function grpc(check: CheckSpec, target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const session = http2Connect(`http://${hostHeader({ ...target, host: target.address })}`);
    const done = (o: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      session.destroy();
      resolve(o);
    };
    const onAbort = (): void => done({ pass: false, message: "aborted" });
    signal.addEventListener("abort", onAbort);
    session.once("error", (err) => done(failure(err)));
    const body = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service: check.grpcService }));
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    const stream = session.request({
      [h2.HTTP2_HEADER_METHOD]: "POST",
      [h2.HTTP2_HEADER_PATH]: "/grpc.health.v1.Health/Check",
      [h2.HTTP2_HEADER_AUTHORITY]: hostHeader(target),
      "content-type": "application/grpc",
      te: "trailers",
      "user-agent": "maxine-health-check",
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let headers: Record<string, unknown> = {};
    stream.once("response", (h) => (headers = h));
    stream.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) done({ pass: false, message: "grpc.health.v1 answer too large" });
      else chunks.push(c);
    });
    stream.once("error", (err) => done(failure(err)));
    const answered = (trailers: Record<string, unknown>): void => {
      // a Trailers-Only answer carries grpc-status in its headers
      const code = Number(trailers["grpc-status"] ?? headers["grpc-status"]);
      if (code !== 0) {
        const name = GRPC_CODES[code] ?? String(code);
        const detail = decodeGrpcMessage(String(trailers["grpc-message"] ?? headers["grpc-message"] ?? ""));
        done({ pass: false, message: `grpc.health.v1 ${name}${detail === "" ? "" : `: ${detail}`}` });
        return;
      }
      const all = Buffer.concat(chunks);
      if (all.length < 5 || all[0] !== 0 || all.readUInt32BE(1) !== all.length - 5) {
        done({ pass: false, message: "grpc.health.v1 answer malformed" });
        return;
      }
      let status: HealthCheckResponse_ServingStatus;
      try {
        status = fromBinary(HealthCheckResponseSchema, all.subarray(5)).status;
      } catch {
        done({ pass: false, message: "grpc.health.v1 answer malformed" });
        return;
      }
      done({ pass: status === HealthCheckResponse_ServingStatus.SERVING, message: `grpc.health.v1 ${HealthCheckResponse_ServingStatus[status] ?? status}` });
    };
    stream.once("trailers", answered);
    stream.once("end", () => {
      // after any trailers event: a Trailers-Only answer (grpc-status in the headers), or a server that is not gRPC
      setImmediate(() => {
        if (headers["grpc-status"] !== undefined) answered({});
        else done({ pass: false, message: `grpc.health.v1 no grpc-status (HTTP ${String(headers[":status"] ?? "?")})` });
      });
    });
    stream.end(frame);
  });
}

function decodeGrpcMessage(m: string): string {
  try {
    return decodeURIComponent(m).slice(0, 200);
  } catch {
    return m.slice(0, 200);
  }
}
