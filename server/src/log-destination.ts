import sonicBoom, { type SonicBoom } from "sonic-boom";

// sonic-boom is CommonJS: its class is a property of the module (Node gives ESM no named export).
const { SonicBoom: Boom } = sonicBoom;

/** PIPE_BUF is the most bytes POSIX guarantees a pipe writes at once, not interleaved with other writers (Linux: 4096). */
const PIPE_BUF = 4096;

/** EXIT_WRITE_RETRIES bounds the wait at exit for a reader that does not read (each retry sleeps sonic-boom's 100 ms). */
const EXIT_WRITE_RETRIES = 10;

/**
 * LogDestination is where the server's log lines go (pino writes to it): a
 * file descriptor written off the event loop and bounded in memory.
 *
 * A line is appended to a buffer and written by fs.write on libuv's thread
 * pool; lines logged while a write is in flight go out together in the next
 * one. A synchronous write per line (what the server did before) cost a
 * Register about a tenth of its time when stdout is a pipe. When the reader
 * is slower than the server, at most maxBytes wait; lines beyond that are
 * dropped and counted (maxine_log_dropped_lines_total) rather than holding
 * the server back or growing without bound. When the reader is gone (EPIPE)
 * the destination stops writing.
 *
 * At exit, whatever waits is written synchronously, giving up when the
 * reader is gone or reads nothing for about a second: sonic-boom 5 throws
 * there (4 retried EPIPE forever, so a SIGTERM after the reader died never
 * ended the process; test/shutdown-process.test.ts).
 */
export class LogDestination {
  /** dropped counts lines not written because maxBytes were already waiting. */
  dropped = 0;
  private failed = false;
  private readonly boom: SonicBoom;
  /** retries is the boom's maxWriteRetries (0: unbounded), an option its type declares but not the property it sets from it. */
  private readonly retries: { maxWriteRetries: number };

  constructor(fd: number, maxBytes: number) {
    // Writes of whole lines, at most PIPE_BUF bytes each: a pipe takes such a write whole, so the lines of
    // worker processes sharing one stdout (MAXINE_WORKERS) never tear into each other.
    this.boom = new Boom({ fd, sync: false, maxLength: maxBytes, maxWrite: PIPE_BUF });
    this.retries = this.boom as unknown as { maxWriteRetries: number };
    this.boom.on("drop", () => this.dropped++);
    this.boom.on("error", (err: NodeJS.ErrnoException) => this.fail(err));
    process.once("exit", () => this.flushSync());
  }

  write(line: string): boolean {
    if (!this.failed) this.boom.write(line);
    return true;
  }

  /** flushSync writes what waits now (pino calls it after a fatal line); it never throws and never waits long. */
  flushSync(): void {
    if (this.failed) return;
    this.retries.maxWriteRetries = EXIT_WRITE_RETRIES;
    try {
      this.boom.flushSync();
    } catch (err) {
      this.fail(err as NodeJS.ErrnoException);
    } finally {
      this.retries.maxWriteRetries = 0;
    }
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (this.failed) return;
    this.failed = true;
    try {
      process.stderr.write(`maxine: log output failed (${err.code ?? err.message}): no more log lines are written\n`);
    } catch {
      // stderr is gone too: nothing left to tell.
    }
  }
}
