import { Code, ConnectError } from "@connectrpc/connect";
import type http from "node:http";
import type { MethodHandler } from "../rpc/service.js";
import { RequestExchange, StreamExchange, type Exchange } from "./exchange.js";
import type { HttpGuard, Verdict } from "./http-guard.js";
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
 *
 * Every request and stream first passes guard (Host and CORS checks, one
 * place for every protocol and the plain endpoints): a refused one is
 * answered PERMISSION_DENIED in its protocol's status, or 403.
 */
export function createRouter(deps: ServeDeps, fallback: RequestHandler, fastPath: boolean, guard: HttpGuard): Router {
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
      const verdict = guard.check(headers[":method"], headers[":authority"] ?? headers.host, headers.origin, one(headers["access-control-request-method"]));
      if (verdict.kind === "refuse") {
        // an RPC is refused in its protocol's status on the stream; anything else as a request (below), like the plain endpoints
        const framing = headers[":method"] === "POST" ? framingOf(headers["content-type"], true) : undefined;
        if (framing === undefined) return false;
        const ex = new StreamExchange(stream, rawHeaders);
        ex.body.resume(); // discard the body
        failCall(ex, framing, new ConnectError(verdict.message, Code.PermissionDenied));
        return true;
      }
      if (verdict.kind === "preflight") return false;
      const m = match(headers[":method"], headers[":path"], headers["content-type"], true);
      if (m === undefined) return false;
      dispatch(m, new StreamExchange(stream, rawHeaders, verdict.headers));
      return true;
    },
    requests(req, res) {
      const http2 = "stream" in req;
      const host = http2 ? (req.authority ?? req.headers.host) : req.headers.host;
      const verdict = guard.check(req.method, host, req.headers.origin, one(req.headers["access-control-request-method"]));
      if (verdict.kind !== "pass") return answerGuard(verdict, req, res, http2);
      if (verdict.headers !== undefined) for (const [k, v] of Object.entries(verdict.headers)) res.setHeader(k, v);
      const m = match(req.method, req.url, req.headers["content-type"], http2);
      if (m === undefined) fallback(req, res);
      else dispatch(m, new RequestExchange(req, res));
    },
  };
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** answerGuard answers a preflight (204) or a refused request: PERMISSION_DENIED in an RPC protocol's status, else 403 in plain text. */
function answerGuard(
  verdict: Exclude<Verdict, { kind: "pass" }>,
  req: Parameters<RequestHandler>[0],
  res: Parameters<RequestHandler>[1],
  http2: boolean,
): void {
  if (verdict.kind === "preflight") {
    (res as http.ServerResponse).writeHead(204, verdict.headers);
    res.end();
    return;
  }
  const framing = req.method === "POST" ? framingOf(req.headers["content-type"], http2) : undefined;
  if (framing !== undefined) {
    const ex = new RequestExchange(req, res);
    ex.body.resume(); // discard the body
    return failCall(ex, framing, new ConnectError(verdict.message, Code.PermissionDenied));
  }
  const body = `${verdict.message}\n`;
  (res as http.ServerResponse).writeHead(403, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
  req.resume();
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
