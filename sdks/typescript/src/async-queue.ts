/**
 * AsyncQueue is a push-driven async iterable: the request side of a client
 * stream. push never waits (the heartbeat stream sends a few small
 * messages per TTL, so the queue stays short), end finishes the iteration,
 * and a consumer that stops iterating (return or throw) ends the queue too.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void) | undefined;
  private ended = false;

  /** closed reports whether end was called or the consumer went away. */
  get closed(): boolean {
    return this.ended;
  }

  /** push queues a value; it is dropped after end. */
  push(value: T): void {
    if (this.ended) return;
    if (this.waiting !== undefined) {
      const wake = this.waiting;
      this.waiting = undefined;
      wake({ value, done: false });
      return;
    }
    this.items.push(value);
  }

  /** end finishes the iteration once the queued values are consumed. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.waiting !== undefined) {
      const wake = this.waiting;
      this.waiting = undefined;
      wake({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length > 0) return Promise.resolve({ value: this.items.shift()!, done: false });
        if (this.ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.waiting = resolve));
      },
      return: () => {
        this.items.length = 0;
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
      // connect-es aborts a request stream by throwing into it.
      throw: (err: unknown) => {
        this.items.length = 0;
        this.end();
        return Promise.reject(err);
      },
    };
  }
}
