import type { Outgoing } from "./context.js";

/**
 * StreamOutput is where a streaming call writes its answers, whatever the
 * protocol: the framing encodes each Outgoing with the call's codec and
 * envelope. Answers are queued with push and leave together on flush, so a
 * burst goes out in one network write.
 */
export interface StreamOutput {
  /** sendHeader sends the response headers now, with any the handler set (ctx.responseHeader), before any answer; else they leave with the first flush. */
  sendHeader(): void;
  /** push queues one answer for the next flush; false when the batch is full and should be flushed now. */
  push(answer: Outgoing): boolean;
  /** flush writes what push queued; false when the client is not reading (wait for whenWritable before writing more). */
  flush(): boolean;
  /** whenWritable calls fn once the client reads again, or the stream is gone. */
  whenWritable(fn: () => void): void;
  /** buffered is how many answer bytes were written (or queued) and not yet sent: the client has not read them. */
  buffered(): number;
  /**
   * cut drops the stream at once with the bytes it buffered (HTTP/2
   * RST_STREAM ENHANCE_YOUR_CALM, read by gRPC clients as
   * RESOURCE_EXHAUSTED; on HTTP/1.1 its connection closes): a status would
   * wait behind bytes a stalled client never reads. whenWritable's
   * callbacks then run (the stream is gone), and the call ends.
   */
  cut(): void;
  /**
   * close ends a bidirectional call, once: cleanly when err is undefined,
   * else with err's status. (A server-streaming handler ends its call by
   * settling the promise run returned.)
   */
  close(err?: unknown): void;
  /** pauseInput stops reading the client's messages (bidirectional streams), resumeInput reads again. */
  pauseInput(): void;
  resumeInput(): void;
}

/**
 * FlushScheduler runs due flushes in turns of perTurn: the first turn in one
 * microtask after a change's dispatch to all watchers, each next one in a
 * setImmediate. Between turns Node sends what was written (so early
 * watchers hear at once and clients read while the server writes) and serves
 * other I/O: the writer's own answer, heartbeats. Without turns, a change
 * seen by 10,000 watchers held the event loop for 60 ms of writes and its
 * Register answer waited behind all of them (docs/performance.md). The
 * composition root builds one and every watch shares it.
 */
export class FlushScheduler {
  private due: Array<(() => void) | undefined> = [];
  private next = 0;
  private scheduled = false;

  constructor(private readonly perTurn = 128) {}

  /** soon runs f in the next turn with room. */
  soon(f: () => void): void {
    this.due.push(f);
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(this.run);
    }
  }

  private readonly run = (): void => {
    const end = Math.min(this.due.length, this.next + this.perTurn);
    while (this.next < end) {
      const f = this.due[this.next]!;
      this.due[this.next++] = undefined;
      f();
    }
    if (this.next < this.due.length) {
      setImmediate(this.run);
      return;
    }
    this.due = [];
    this.next = 0;
    this.scheduled = false;
  };
}
