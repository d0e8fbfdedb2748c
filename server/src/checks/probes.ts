import { request as httpRequest } from "node:http";
import { connect as http2Connect, constants as h2 } from "node:http2";
import { connect as tcpConnect, isIP } from "node:net";
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

/** MAX_BODY_BYTES is how much of an HTTP check's answer is read before the connection is dropped (the status is all a check needs). */
const MAX_BODY_BYTES = 64 * 1024;

/**
 * probe runs check against target once, over a fresh connection that it
 * always closes. It never rejects: a failure is an outcome. The timeout
 * (the checker's signal) ends it wherever it is: connecting, waiting for
 * an answer, or reading it.
 */
export const probe: Prober = (check, target, signal) => {
  switch (check.kind) {
    case "TCP":
      return tcp(target, signal);
    case "HTTP":
      return http(check, target, signal);
    case "GRPC":
      return grpc(check, target, signal);
  }
};

function failure(err: unknown): ProbeOutcome {
  const e = err as NodeJS.ErrnoException;
  return { pass: false, message: `connect ${e.code ?? e.message}` };
}

function tcp(target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: target.address, port: target.port, signal });
    socket.once("connect", () => {
      socket.destroy();
      resolve({ pass: true, message: `TCP connect to port ${target.port}` });
    });
    socket.once("error", (err) => {
      socket.destroy();
      resolve(failure(err));
    });
  });
}

function hostHeader(target: ProbeTarget): string {
  const h = isIP(target.host) === 6 ? `[${target.host}]` : target.host;
  return `${h}:${target.port}`;
}

function http(check: CheckSpec, target: ProbeTarget, signal: AbortSignal): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(o);
    };
    const req = httpRequest({
      host: target.address,
      port: target.port,
      method: check.httpMethod,
      path: check.httpPath,
      headers: { host: hostHeader(target), "user-agent": "maxine-health-check", connection: "close" },
      agent: false,
      signal,
    });
    req.once("response", (res) => {
      const status = res.statusCode ?? 0;
      const pass = status >= check.statusMin && status <= check.statusMax;
      const outcome = { pass, message: `HTTP ${status} from ${check.httpPath}` };
      // the status decides; read a little of the body so a keep-alive server sees a normal close, then drop it
      let read = 0;
      res.on("data", (chunk: Buffer) => {
        read += chunk.length;
        if (read > MAX_BODY_BYTES) done(outcome);
      });
      res.once("end", () => done(outcome));
      res.once("error", () => done(outcome));
    });
    req.once("error", (err) => done(failure(err)));
    req.end();
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
