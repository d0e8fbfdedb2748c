import type { Interceptor } from "@connectrpc/connect";

/** Recorded is one request message a client sent, with when it was sent. */
export interface Recorded {
  readonly method: string;
  readonly at: number;
  readonly message: unknown;
}

/**
 * Recorder is an interceptor that records every request message (unary and
 * streamed) and can make calls of one method fail while `failing` is set,
 * to simulate a server a client cannot reach.
 */
export class Recorder {
  readonly sent: Recorded[] = [];
  /** failing names methods (e.g. "WatchServices") whose calls fail with the given error. */
  readonly failing = new Map<string, Error>();
  /** calls counts the calls made to each method. */
  readonly calls = new Map<string, number>();

  readonly interceptor: Interceptor = (next) => async (req) => {
    const method = req.method.name;
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const failure = this.failing.get(method);
    if (failure !== undefined) throw failure;
    if (!req.stream) {
      this.sent.push({ method, at: Date.now(), message: req.message });
      return next(req);
    }
    const source = req.message;
    const sent = this.sent;
    async function* tap() {
      for await (const m of source) {
        sent.push({ method, at: Date.now(), message: m });
        yield m;
      }
    }
    return next({ ...req, message: tap() });
  };

  /** of returns the messages sent to one method. */
  of<T>(method: string): T[] {
    return this.sent.filter((r) => r.method === method).map((r) => r.message as T);
  }

  /** times returns when messages were sent to one method. */
  times(method: string): number[] {
    return this.sent.filter((r) => r.method === method).map((r) => r.at);
  }
}
