import type { Readable } from "node:stream";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * eachChunk hands each chunk of a request body (an HTTP/1.1 or compat
 * request, or an HTTP/2 stream served directly) to onChunk and resolves at
 * its end. When onChunk throws, eachChunk rejects with that error and the rest
 * of the body is discarded as it comes, so the error can still be answered
 * (the callers then cut the body off: connection: close on HTTP/1.1,
 * closeUnread on HTTP/2). Plain listeners, not an async iterator: it costs
 * more than the small bodies of unary calls, and on an HTTP/2 stream it
 * destroys the stream (the whole call, answer included) once the body ends.
 */
export function eachChunk(req: Readable, onChunk: (chunk: Buffer) => void, release = false): Promise<void> {
  return new Promise((resolve, reject) => {
    // Once the body settled, its listeners do nothing. A unary call's stay
    // on the request, which ends with the call (removing four listeners
    // cost more than the call's routing); the error listener staying keeps
    // a late stream error from being thrown as unhandled. With release
    // (a server stream, held open for hours, tens of thousands at once)
    // they are removed, so the stream holds none of them.
    let settled = false;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (release) {
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("error", onError);
        req.off("close", onClose);
      }
      if (err === undefined) resolve();
      else reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (settled) return;
      try {
        onChunk(chunk);
      } catch (err) {
        settle(err as Error);
        req.resume();
      }
    };
    const onEnd = (): void => settle();
    // A stream that fails (reset, a connection the client broke: ERR_HTTP2_*,
    // ECONNRESET) is the client's doing: the call is cancelled, not failed.
    const onError = (err: Error): void => {
      if (!settled) settle(new ConnectError(`request: the client's stream failed (${(err as NodeJS.ErrnoException).code ?? err.message})`, Code.Canceled));
    };
    // every request closes, most after their body ended (settled by then)
    const onClose = (): void => {
      if (!settled) settle(new ConnectError("request: the client closed the request before its body ended", Code.Canceled));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}
