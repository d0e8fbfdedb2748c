import type { Message } from "@bufbuild/protobuf";

/** MAX_WAITING bounds the client's messages a RequestStream holds before it stops reading the body. */
const MAX_WAITING = 16;

/**
 * RequestStream hands a client stream's messages, as the framing reads them,
 * to a handler that iterates them (client streaming). Past MAX_WAITING
 * unread messages it pauses the body (pause, resume) until the handler
 * catches up, so a fast client cannot make the server hold its whole
 * stream.
 */
export class RequestStream implements AsyncIterable<Message> {
  private readonly waiting: Message[] = [];
  private ended: { err?: unknown } | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly pause: () => void,
    private readonly resume: () => void,
  ) {}

  /** push adds a message the client sent. */
  push(m: Message): void {
    this.waiting.push(m);
    if (this.waiting.length === MAX_WAITING) this.pause();
    this.notify();
  }

  /** end marks the stream's end: the client half-closed (err undefined) or the body failed. */
  end(err?: unknown): void {
    this.ended ??= err === undefined ? {} : { err };
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Message> {
    for (;;) {
      const m = this.waiting.shift();
      if (m !== undefined) {
        if (this.waiting.length === MAX_WAITING - 1) this.resume();
        yield m;
        continue;
      }
      if (this.ended !== undefined) {
        if (this.ended.err !== undefined) throw this.ended.err;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
