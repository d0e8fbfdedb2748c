import http2 from "node:http2";
import type { Logger } from "../domain/logger.js";
import type { Registry } from "../registry/registry.js";
import type { Limits } from "../registry/validate.js";
import type { WatchHub } from "../watch/hub.js";
import type { Connections } from "./connections.js";
import type { Shutdown } from "./shutdown.js";
import { unaryMethods } from "./answers.js";
import { isConnectUnary, serveConnectUnary, serveGrpcUnary } from "./fast-unary.js";
import { serveGrpcHeartbeat } from "./grpc-heartbeat.js";
import { serveGrpcWatch } from "./grpc-watch.js";
import { isGrpcProto } from "./grpc-wire.js";
import type { RequestHandler, StreamHandler } from "./listener.js";

/** FastPathDeps are what the fast paths serve with: the same parts and limits as the connect-es routes. */
export interface FastPathDeps {
  readonly registry: Registry;
  readonly hub: WatchHub;
  readonly limits: Limits;
  readonly connections: Connections;
  readonly maxMessageBytes: number;
  readonly log: Logger;
  /** shutdown fires when the server drains: open heartbeat streams end with its reason (UNAVAILABLE). */
  readonly shutdown: Shutdown;
}

const SERVICE = "/maxine.registry.v1.RegistryService/";
type Route = (deps: FastPathDeps, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => Promise<void>;
const grpcRoutes = new Map<string, Route>([
  [`${SERVICE}WatchServices`, serveGrpcWatch],
  [`${SERVICE}Heartbeat`, serveGrpcHeartbeat],
  ...[...unaryMethods.values()].map((m): [string, Route] => [`${SERVICE}${m.name}`, (deps, stream, headers) => serveGrpcUnary(deps, m, stream, headers)]),
]);
const connectUnary = new Map([...unaryMethods.values()].map((m) => [`${SERVICE}${m.name}`, m]));

/** FastPath is the two entry points of the fast paths: HTTP/2 streams (gRPC) and requests (Connect unary). */
export interface FastPath {
  /** streams serves gRPC calls of the registry's methods from their HTTP/2 streams, and declines the rest. */
  readonly streams: StreamHandler;
  /** requests serves Connect unary calls of the registry's methods, and hands the rest to connect-es. */
  readonly requests: RequestHandler;
}

/**
 * fastPath serves the registry's hot calls itself: every RPC when it comes
 * as gRPC with protobuf over HTTP/2 (what the SDKs and grpc clients send),
 * served from the HTTP/2 stream with no compat request or response objects,
 * and the unary calls as Connect unary (JSON or protobuf, what curl-style
 * callers send). Every other request goes to handler (connect-es). The fast
 * paths exist for scale: connect-es's generic machinery costs tens of
 * microseconds and kilobytes per call, stream and message, which a registry
 * holding thousands of streams and answering thousands of lookups per second
 * cannot afford (bench/). Their requests, limits, errors and semantics are
 * those of the connect-es routes, whose validation and core calls they share.
 */
export function fastPath(handler: RequestHandler, deps: FastPathDeps): FastPath {
  const noop = (): void => {};
  return {
    streams(stream, headers) {
      const path = headers[":path"];
      if (headers[":method"] !== "POST" || path === undefined || !isGrpcProto(headers)) return false;
      const route = grpcRoutes.get(path);
      if (route === undefined) return false;
      // A stream reset by the client emits "error"; the call's own close handling covers it.
      stream.on("error", noop);
      void route(deps, stream, headers).catch((err: unknown) => {
        deps.log.error({ err, procedure: path }, "unexpected error");
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
      return true;
    },
    requests(req, res) {
      const unary = req.method === "POST" && req.url !== undefined ? connectUnary.get(req.url) : undefined;
      if (unary === undefined || !isConnectUnary(req)) return handler(req, res);
      void serveConnectUnary(deps, unary, req, res).catch((err: unknown) => {
        deps.log.error({ err, procedure: req.url }, "unexpected error");
        res.destroy();
      });
    },
  };
}
