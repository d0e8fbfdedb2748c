import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { AsyncQueue } from "./async-queue.js";
import type { MaxineClient } from "./client.js";
import {
  HeartbeatRequestSchema,
  type BeatSchema,
  type HeartbeatRequest,
  type HeartbeatResponse,
} from "./gen/maxine/registry/v1/registry_pb.js";

/** BeatInit is one beat to send: a key, and optionally a status and a load. */
export type BeatInit = MessageInitShape<typeof BeatSchema>;

/** HeartbeatStreamHandlers receive what one HeartbeatStream reads. */
export interface HeartbeatStreamHandlers {
  /** onResponse gets every HeartbeatResponse in order; first is true for the first one. */
  onResponse(res: HeartbeatResponse, first: boolean): void;
}

/**
 * HeartbeatStream is one Heartbeat call: a queue of requests the session
 * pushes into, the responses read in the background, and the send times of
 * unanswered requests so the session can tell a silent stream from a slow
 * one. `done` resolves (never rejects) when the call is over, with the error
 * that ended it, or undefined when it ended because end() was called.
 */
export class HeartbeatStream {
  /** done settles when the call is over: the error that ended it, or undefined after end(). */
  readonly done: Promise<unknown>;
  private answered = false;
  private readonly queue = new AsyncQueue<HeartbeatRequest>();
  private readonly controller = new AbortController();
  private readonly unanswered = new Map<bigint, number>();
  private ending = false;

  constructor(client: MaxineClient, handlers: HeartbeatStreamHandlers) {
    this.done = this.read(client, handlers);
  }

  /** ended reports whether end was called: the stream takes no more beats. */
  get ended(): boolean {
    return this.ending;
  }

  /** send queues one request; it is dropped once the stream ended. */
  send(sequence: bigint, beats: readonly BeatInit[], now: number): void {
    if (this.queue.closed) return;
    this.unanswered.set(sequence, now);
    this.queue.push(create(HeartbeatRequestSchema, { sequence, beats: [...beats] }));
  }

  /** oldestUnanswered is when the oldest unanswered request was sent, or undefined when all were answered. */
  oldestUnanswered(): number | undefined {
    let oldest: number | undefined;
    for (const at of this.unanswered.values()) if (oldest === undefined || at < oldest) oldest = at;
    return oldest;
  }

  /** end half-closes the stream: the server finishes its answers and ends the call. */
  end(): void {
    this.ending = true;
    this.queue.end();
  }

  /** abort cancels the call at once with reason. */
  abort(reason: unknown): void {
    this.controller.abort(reason);
  }

  private async read(client: MaxineClient, handlers: HeartbeatStreamHandlers): Promise<unknown> {
    let error: unknown;
    try {
      for await (const res of client.heartbeat(this.queue, { signal: this.controller.signal })) {
        const first = !this.answered;
        this.answered = true;
        this.unanswered.delete(res.sequence);
        handlers.onResponse(res, first);
      }
      if (!this.ending) error = new ConnectError("heartbeat: the server ended the stream", Code.Unavailable);
    } catch (err) {
      error = this.ending && this.controller.signal.aborted ? undefined : err;
    }
    this.queue.end();
    return error;
  }
}
