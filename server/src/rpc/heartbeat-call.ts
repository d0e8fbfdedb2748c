import { create } from "@bufbuild/protobuf";
import { HeartbeatResponseSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../domain/errors.js";
import type { HeartbeatStream } from "../registry/leases.js";
import type { BeatOutcome, Registry } from "../registry/registry.js";
import { beatAckOf, instanceInputOf, keyOfPb, knownStatus, statusOf, ttlOf } from "../wire/convert.js";
import { heartbeatFrame, type BeatsRequest } from "../wire/heartbeat-wire.js";
import type { CallContext, Outgoing } from "./context.js";
import type { BidiCall } from "./service.js";
import type { StreamOutput } from "./stream-output.js";

/**
 * HeartbeatCall is one Heartbeat stream, whatever its protocol: the framing
 * feeds it the client's requests (receive, inputEnded, fail) and it answers
 * through a StreamOutput. It owns what the RPC does: the stream's slot on
 * its connection and in the registry, answers in request order (at once
 * when no status change waits for the store, so a turn's answers leave in
 * one network write), backpressure (a client that does not read its answers
 * is not read either), and the stream's end however it comes (client
 * half-close, cancel, deadline, shutdown, a bad message): the instances
 * bound to it then start their grace.
 */
export class HeartbeatCall implements BidiCall {
  private readonly hb: HeartbeatStream;
  private ended = false;
  private waiting = 0;
  /** answering settles once every request received so far is answered; undefined while none waits for the store. */
  private answering: Promise<void> | undefined;

  /** The constructor takes the call's slots (RESOURCE_EXHAUSTED when none is left) and throws before anything is held. */
  constructor(
    private readonly registry: Registry,
    private readonly ctx: CallContext,
    private readonly out: StreamOutput,
  ) {
    ctx.connection.acquire("heartbeats", ctx.principal.name);
    try {
      this.hb = registry.openStream(ctx.access);
    } catch (err) {
      ctx.connection.release("heartbeats", ctx.principal.name);
      throw err;
    }
    ctx.signal.onAbort(this);
  }

  /** callAborted ends the call when it must end (cancel, deadline, shutdown). */
  callAborted(reason: unknown): void {
    this.end(reason);
  }

  /** receive answers one request (a BeatsRequest, as decoded by the handler), after every earlier one. */
  receive(req: unknown): void {
    const r = req as BeatsRequest;
    if (this.ended) return;
    if (this.waiting === 0) {
      const later = this.answer(r);
      if (later === undefined) return;
      this.answering = later;
    } else {
      this.answering = this.answering!.then(() => this.answer(r));
    }
    this.waiting++;
    this.answering = this.answering.finally(() => this.waiting--);
  }

  /** inputEnded ends the call cleanly once every request received is answered (the client half-closed). */
  inputEnded(): void {
    if (this.waiting === 0) this.end();
    else void this.answering!.then(() => this.end());
  }

  /** fail ends the call with err (a frame or message the framing could not read). */
  fail(err: unknown): void {
    this.end(err);
  }

  private answer(r: BeatsRequest): Promise<void> | undefined {
    if (this.ended) return;
    let outcomes: BeatOutcome[] | Promise<BeatOutcome[]>;
    try {
      outcomes = applyBeats(this.registry, this.hb, r);
    } catch (err) {
      this.end(err);
      return;
    }
    if (!(outcomes instanceof Promise)) return this.write(r.sequence, outcomes);
    return outcomes.then(
      (o) => this.write(r.sequence, o),
      (err: unknown) => this.end(err),
    );
  }

  private write(sequence: bigint, outcomes: BeatOutcome[]): undefined {
    if (this.ended) return;
    const answer: Outgoing = {
      frame: () => heartbeatFrame(sequence, outcomes),
      message: () => create(HeartbeatResponseSchema, { sequence, acks: outcomes.map(beatAckOf) }),
    };
    try {
      this.out.push(answer);
    } catch (err) {
      this.end(err); // an answer the protocol cannot carry (larger than MAXINE_MAX_RESPONSE_BYTES)
      return;
    }
    if (!this.out.flush()) {
      // A client that does not read its answers is not read either.
      this.out.pauseInput();
      this.out.whenWritable(() => this.out.resumeInput());
    }
  }

  private end(err?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.ctx.signal.offAbort(this);
    // a peer the server closed for not answering PINGs was silent for MAXINE_KEEPALIVE_TIMEOUT already: no grace on top
    this.registry.closeStream(this.hb, this.ctx.connection.peerSilent ? 0 : undefined);
    this.ctx.connection.release("heartbeats", this.ctx.principal.name);
    this.out.close(err);
  }
}

/**
 * applyBeats applies one HeartbeatRequest on stream and returns each beat's
 * outcome: synchronously unless a beat changes a status (Registry.heartbeat).
 * An unknown status ends the stream with INVALID_ARGUMENT (thrown); a bad
 * key or load is answered per beat (BEAT_RESULT_INVALID).
 */
export function applyBeats(registry: Registry, stream: HeartbeatStream, req: BeatsRequest): BeatOutcome[] | Promise<BeatOutcome[]> {
  const beats = req.beats.map((b, i) => {
    if (!knownStatus(b.status)) throw invalid(`beats[${i}].status`, `unknown value ${b.status}`);
    if (b.instance !== undefined && !knownStatus(b.instance.status)) {
      throw invalid(`beats[${i}].instance.status`, `unknown value ${b.instance.status}`);
    }
    const register = b.instance === undefined ? undefined : { instance: instanceInputOf(b.instance, `beats[${i}].instance`), ttlMs: ttlOf(b.leaseTtl, `beats[${i}].lease_ttl`) };
    return { key: keyOfPb(b.key), status: statusOf(b.status), load: b.load, register };
  });
  return registry.heartbeat(stream, beats);
}
