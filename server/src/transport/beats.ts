import { create } from "@bufbuild/protobuf";
import { HeartbeatResponseSchema, type HeartbeatRequest, type HeartbeatResponse } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../domain/errors.js";
import type { HeartbeatStream } from "../registry/leases.js";
import type { BeatOutcome, Registry } from "../registry/registry.js";
import type { BeatsRequest } from "./heartbeat-wire.js";
import { beatAckOf, instanceInputOf, keyOfPb, knownStatus, statusOf, ttlOf } from "./convert.js";

/**
 * answerBeats applies one HeartbeatRequest on stream and builds its answer.
 * An unknown status ends the stream with INVALID_ARGUMENT (thrown); a bad
 * key or load is answered per beat (BEAT_RESULT_INVALID), and a beat whose
 * instance the registry registers is answered BEAT_RESULT_REGISTERED. Both ways a
 * heartbeat stream is served (connect-es, grpc-heartbeat.ts) apply beats
 * the same way (applyBeats).
 */
export async function answerBeats(registry: Registry, stream: HeartbeatStream, req: HeartbeatRequest): Promise<HeartbeatResponse> {
  const outcomes = await applyBeats(registry, stream, req);
  return create(HeartbeatResponseSchema, { sequence: req.sequence, acks: outcomes.map(beatAckOf) });
}

/**
 * applyBeats applies one HeartbeatRequest on stream and returns each beat's
 * outcome, for answerBeats or an encoder (heartbeat-wire.ts): synchronously
 * unless a beat changes a status (Registry.heartbeat).
 */
export function applyBeats(registry: Registry, stream: HeartbeatStream, req: BeatsRequest): BeatOutcome[] | Promise<BeatOutcome[]> {
  const beats = req.beats.map((b, i) => {
    if (!knownStatus(b.status)) throw invalid(`beats[${i}].status`, `unknown value ${b.status}`);
    if (b.instance !== undefined && !knownStatus(b.instance.status)) {
      throw invalid(`beats[${i}].instance.status`, `unknown value ${b.instance.status}`);
    }
    const register = b.instance === undefined ? undefined : { instance: instanceInputOf(b.instance), ttlMs: ttlOf(b.leaseTtl) };
    return { key: keyOfPb(b.key), status: statusOf(b.status), load: b.load, register };
  });
  return registry.heartbeat(stream, beats);
}
