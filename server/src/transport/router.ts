import { Code, ConnectError } from "@connectrpc/connect";
import { requestExchange, streamExchange, type Exchange } from "./exchange.js";
import type { RequestHandler, StreamHandler } from "./listener.js";
import { framingOf, type Framing } from "./protocols.js";
import { failCall, serve, type ServeDeps } from "./serve.js";

/** Router is the listener's two entry points: HTTP/2 streams served directly, and requests (HTTP/1.1 and HTTP/2 compat). */
export interface Router {
  readonly streams: StreamHandler;
  readonly requests: RequestHandler;
}

/**
 * createRouter routes each POST whose content type names a protocol and
 * codec this framing serves (gRPC, gRPC-Web and Connect, protobuf or JSON)
 * to its method's handler through the pipeline, HTTP/2 streams with no
 * compat objects. Everything else (GET requests, gRPC-Web text, /metrics,
 * /healthz) goes to fallback (connect-es and the plain HTTP endpoints), as
 * does every call when fastPath is off (MAXINE_FAST_PATH). An unknown method
 * over gRPC or gRPC-Web is answered UNIMPLEMENTED in the protocol's own
 * status, on both ways.
 */
export function createRouter(deps: ServeDeps, fallback: RequestHandler, fastPath: boolean): Router {
  const route = (method: string | undefined, path: string | undefined, contentType: string | undefined, http2: boolean, ex: () => Exchange): boolean => {
    if (method !== "POST" || path === undefined) return false;
    const framing = framingOf(contentType, http2);
    if (framing === undefined) return false;
    const handler = deps.pipeline.lookup(path);
    if (handler === undefined) {
      if (framing.protocol === "connect") return false; // connect-es answers 404, as Connect specifies
      unimplemented(ex(), framing, path);
      return true;
    }
    if (!fastPath) return false;
    serve(deps, ex(), framing, handler);
    return true;
  };
  return {
    streams(stream, headers) {
      return route(headers[":method"], headers[":path"], headers["content-type"], true, () => streamExchange(stream, headers));
    },
    requests(req, res) {
      const h2 = "stream" in req;
      if (!route(req.method, req.url, req.headers["content-type"], h2, () => requestExchange(req, res))) fallback(req, res);
    },
  };
}

function unimplemented(ex: Exchange, framing: Framing, path: string): void {
  ex.body.resume(); // discard the body
  failCall(ex, framing, new ConnectError(`${path} is not a method this server serves`, Code.Unimplemented));
}
