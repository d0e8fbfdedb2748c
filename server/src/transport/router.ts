import { Code, ConnectError } from "@connectrpc/connect";
import type { MethodHandler } from "../rpc/service.js";
import { RequestExchange, StreamExchange, type Exchange } from "./exchange.js";
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
  // How much of an HTTP/1.1 request body answered early is read and dropped before the connection is closed (exchange.ts).
  const drainBytes = Math.max(256 * 1024, deps.maxMessageBytes);
  /** match finds what serves a request: its framing and handler, UNIMPLEMENTED for an unknown gRPC method, or undefined for the fallback. */
  const match = (method: string | undefined, path: string | undefined, contentType: string | undefined, http2: boolean): Match | undefined => {
    if (method !== "POST" || path === undefined) return undefined;
    const framing = framingOf(contentType, http2);
    if (framing === undefined) return undefined;
    const handler = deps.pipeline.lookup(path);
    if (handler === undefined) {
      // connect-es answers an unknown Connect procedure with 404, as Connect specifies
      return framing.protocol === "connect" ? undefined : { framing, handler: undefined, path };
    }
    return fastPath ? { framing, handler, path } : undefined;
  };
  const dispatch = (m: Match, ex: Exchange): void => {
    if (m.handler === undefined) unimplemented(ex, m.framing, m.path);
    else serve(deps, ex, m.framing, m.handler);
  };
  return {
    streams(stream, headers, rawHeaders) {
      const m = match(headers[":method"], headers[":path"], headers["content-type"], true);
      if (m === undefined) return false;
      dispatch(m, new StreamExchange(stream, rawHeaders));
      return true;
    },
    requests(req, res) {
      const m = match(req.method, req.url, req.headers["content-type"], "stream" in req);
      if (m === undefined) fallback(req, res);
      else dispatch(m, new RequestExchange(req, res, drainBytes));
    },
  };
}

interface Match {
  readonly framing: Framing;
  readonly handler: MethodHandler | undefined;
  readonly path: string;
}

function unimplemented(ex: Exchange, framing: Framing, path: string): void {
  ex.body.resume(); // discard the body
  failCall(ex, framing, new ConnectError(`${path} is not a method this server serves`, Code.Unimplemented));
}
