import http2 from "node:http2";
import type { Logger } from "../registry/logger.js";
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
import type { RequestHandler } from "./listener.js";

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
type Route = (deps: FastPathDeps, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => Promise<void>;
const grpcRoutes = new Map<string, Route>([
  [`${SERVICE}WatchServices`, serveGrpcWatch],
  [`${SERVICE}Heartbeat`, serveGrpcHeartbeat],
  ...[...unaryMethods.values()].map((m): [string, Route] => [`${SERVICE}${m.name}`, (deps, req, res) => serveGrpcUnary(deps, m, req, res)]),
]);
const connectUnary = new Map([...unaryMethods.values()].map((m) => [`${SERVICE}${m.name}`, m]));

/**
 * withGrpcFastPath serves the registry's hot calls itself: the two
 * long-lived streams, WatchServices and Heartbeat, when they come as gRPC
 * with protobuf over HTTP/2 (what the SDKs and grpc clients send), and the
 * unary calls as gRPC or as Connect unary (JSON or protobuf, what curl-style
 * callers send). Every other request goes to handler (connect-es). The fast
 * paths exist for scale: connect-es's generic machinery costs tens of
 * microseconds and kilobytes per call, stream and message, which a registry
 * holding thousands of streams and answering thousands of lookups per second
 * cannot afford (bench/). Their requests, limits, errors and semantics are
 * those of the connect-es routes, whose validation and core calls they share.
 */
export function withGrpcFastPath(handler: RequestHandler, deps: FastPathDeps): RequestHandler {
  return (req, res) => {
    if (req.method !== "POST" || req.url === undefined) return handler(req, res);
    const unary = connectUnary.get(req.url);
    if (unary !== undefined && isConnectUnary(req)) {
      void serveConnectUnary(deps, unary, req, res).catch((err: unknown) => {
        deps.log.error({ err, procedure: req.url }, "unexpected error");
        res.destroy();
      });
      return;
    }
    const route = grpcRoutes.get(req.url);
    if (route !== undefined && isGrpcProto(req)) {
      const h2req = req as http2.Http2ServerRequest;
      void route(deps, h2req, res as http2.Http2ServerResponse).catch((err: unknown) => {
        deps.log.error({ err, procedure: req.url }, "unexpected error");
        h2req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      });
      return;
    }
    handler(req, res);
  };
}
