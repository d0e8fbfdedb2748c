import http from "node:http";

/**
 * unreadBodyLimit is how much of an HTTP/1.1 request body answered before it
 * ended is read and dropped before the connection is cut: the larger of
 * 256 KiB and MAXINE_MAX_MESSAGE_BYTES.
 */
export function unreadBodyLimit(maxMessageBytes: number): number {
  return Math.max(256 * 1024, maxMessageBytes);
}

/**
 * drainingResponses makes the HTTP/1.1 server's response class
 * (http.createServer's ServerResponse option): a response started before its
 * request body ended drains the rest (drainUnread), whoever answers it.
 * Maxine's framing (RequestExchange), connect-es (the fallback: GET
 * requests, gRPC-Web text, and every call with MAXINE_FAST_PATH=off), the
 * guard's refusals and the plain endpoints all start their responses in
 * writeHead (Node's implicit headers, from write() or end(), call it too),
 * so this is the one place. Without it, a request connect-es refused while
 * its body was still coming (a message over the limit) left that body
 * unread, and the next request on the keep-alive connection was never
 * parsed.
 */
export function drainingResponses(limitBytes: number): typeof http.ServerResponse<http.IncomingMessage> {
  return class DrainingResponse extends http.ServerResponse {
    override writeHead(statusCode: number, ...rest: unknown[]): this {
      const req = this.req;
      if (!this.headersSent && bodyUnread(req)) drainUnread(req, this, limitBytes);
      return (super.writeHead as (status: number, ...args: unknown[]) => this)(statusCode, ...rest);
    }
  };
}

/** bodyUnread reports whether a request has a body whose end was not read yet (one with neither a length nor chunked encoding has none). */
function bodyUnread(req: http.IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/** LINGER_MS is how long a request answered before its body ended is kept reading (and dropping) before it is cut: an HTTP/1.1 connection answered with "connection: close", an HTTP/2 stream (exchange.ts cutUnread). */
export const LINGER_MS = 500;

/**
 * drainUnread handles an HTTP/1.1 request answered before its body ended (a
 * message over the limit, a bad envelope). Closing the connection at once
 * makes the client's next write fail (EPIPE, or a reset that overtakes the
 * answer), and the client reports that instead of the answer. So once the
 * answer is out the rest of the body is read and dropped, as Go's net/http
 * does, up to limitBytes (unreadBodyLimit).
 *
 * A body whose content-length fits that bound is read to its end and the
 * connection stays reusable. Any other (no length, or a longer one) may be
 * cut when the bound passes, so its answer says "connection: close": a
 * client that had already sent it all would otherwise put the connection
 * back in its pool and send its next call on a connection about to be cut
 * (the HTTP/1.1 conformance cases reset by peer). Node ends such an answer
 * with socket.destroySoon(), which drops what the client still sends and
 * answers it with RST; this socket's destroySoon only half-closes instead,
 * and the rest is read and dropped for up to LINGER_MS (Go's net/http waits
 * 500 ms the same way) before the connection is cut.
 *
 * A request its reader destroyed cannot be read any more: connect-es
 * destroys one when it stops reading a streamed body (its async iterator's
 * return), and Node then stops reading the socket at the body's next bytes.
 * Its connection is not reusable either: it is answered "connection: close"
 * and cut after LINGER_MS, or at once if it was destroyed after the answer
 * began.
 */
function drainUnread(req: http.IncomingMessage, res: http.ServerResponse, limitBytes: number): void {
  const socket = res.socket;
  if (socket === null) return; // the connection is gone: nothing to drain
  const length = req.headers["content-length"];
  const reusable = length !== undefined && Number(length) <= limitBytes && !req.destroyed;
  if (!reusable) {
    res.shouldKeepAlive = false;
    Object.defineProperty(socket, "destroySoon", { value: () => socket.end(), configurable: true });
  }
  res.once("finish", () => {
    const cut = (): void => {
      clearTimeout(linger);
      socket.destroy();
    };
    const linger = reusable ? undefined : setTimeout(cut, LINGER_MS).unref();
    if (linger !== undefined) socket.once("close", () => clearTimeout(linger));
    if (req.complete) return;
    if (req.destroyed) {
      if (reusable) cut();
      return;
    }
    let read = 0;
    const onData = (chunk: Buffer): void => {
      read += chunk.length;
      if (read > limitBytes) {
        req.off("data", onData);
        cut();
      }
    };
    req.on("data", onData);
    req.resume();
  });
}
