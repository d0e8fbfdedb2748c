import { create } from "@bufbuild/protobuf";
import { HeartbeatResponseSchema, type HeartbeatRequest, type HeartbeatResponse } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { invalid } from "../registry/errors.js";
import type { HeartbeatStream } from "../registry/leases.js";
import type { Registry } from "../registry/registry.js";
import { beatAckOf, keyOfPb, knownStatus, statusOf } from "./convert.js";

/**
 * answerBeats applies one HeartbeatRequest on stream and builds its answer.
 * An unknown status ends the stream with INVALID_ARGUMENT (thrown); a bad
 * key or load is answered per beat (BEAT_RESULT_INVALID). Both ways a
 * heartbeat stream is served (connect-es, grpc-heartbeat.ts) call it.
 */
export async function answerBeats(registry: Registry, stream: HeartbeatStream, req: HeartbeatRequest): Promise<HeartbeatResponse> {
  const beats = req.beats.map((b, i) => {
    if (!knownStatus(b.status)) throw invalid(`beats[${i}].status`, `unknown value ${b.status}`);
    return { key: keyOfPb(b.key), status: statusOf(b.status), load: b.load };
  });
  const outcomes = await registry.heartbeat(stream, beats);
  return create(HeartbeatResponseSchema, { sequence: req.sequence, acks: outcomes.map(beatAckOf) });
}
