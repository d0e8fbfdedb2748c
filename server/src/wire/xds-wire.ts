import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { ControlPlaneSchema } from "../xds/gen/envoy/config/core/v3/base_pb.js";
import {
  DeltaDiscoveryResponseSchema,
  DiscoveryResponseSchema,
  ResourceNameSchema,
  ResourceSchema,
  type DeltaDiscoveryResponse,
  type DiscoveryResponse,
} from "../xds/gen/envoy/service/discovery/v3/discovery_pb.js";
import type { Packed } from "../xds/resources.js";
import type { Outgoing } from "../rpc/context.js";
import { bool, encoded, encodedList, string, strings } from "./schema-columns.js";
import { MessageWriter } from "./schema-writer.js";

// xDS responses on the wire, without protobuf-es's reflection. Every open
// xDS stream gets its own response to a change (its own nonce), but the
// resources in it are the same for every stream: each resource's Any (and,
// for Delta, its Resource wrapper) is encoded once, when first sent, and
// spliced into each stream's response by writers compiled from the schema
// (schema-writer.ts), exactly as toBinary writes the message. Profiling the
// fan-out to 1,000 subscribers showed protobuf-es's toBinary of the
// responses as the largest cost of a change. test/xds-wire.test.ts checks
// the writers against protobuf-es for random responses.

/** SotwAnswer is one DiscoveryResponse: the resources (shared), and what is the stream's own. */
export interface SotwAnswer {
  readonly versionInfo: string;
  readonly resources: readonly Packed[];
  readonly typeUrl: string;
  readonly nonce: string;
}

/** DeltaAnswer is one DeltaDiscoveryResponse. */
export interface DeltaAnswer {
  readonly systemVersionInfo: string;
  readonly resources: readonly Packed[];
  readonly removed: readonly string[];
  readonly typeUrl: string;
  readonly nonce: string;
}

// memos of pure functions of immutable Packed resources (ADR 0002): they live and die with the resource
const anyBytes = new WeakMap<Packed, Uint8Array>();
const resourceBytes = new WeakMap<Packed, Uint8Array>();

function anyOf(p: Packed): Uint8Array {
  let b = anyBytes.get(p);
  if (b === undefined) anyBytes.set(p, (b = toBinary(AnySchema, p.any)));
  return b;
}

function resourceOf(p: Packed): Uint8Array {
  let b = resourceBytes.get(p);
  if (b === undefined) resourceBytes.set(p, (b = toBinary(ResourceSchema, create(ResourceSchema, { name: p.name, version: p.version, resource: p.any }))));
  return b;
}

/** Encoded is an answer with its resources' shared encodings looked up once. */
type Encoded<A> = A & { readonly encoded: readonly Uint8Array[] };

const sotwWriter = new MessageWriter<DiscoveryResponse, Encoded<SotwAnswer>>(DiscoveryResponseSchema, {
  versionInfo: string((a) => a.versionInfo),
  resources: encodedList(AnySchema, (a) => a.encoded),
  canary: bool(() => false),
  typeUrl: string((a) => a.typeUrl),
  nonce: string((a) => a.nonce),
  controlPlane: encoded(ControlPlaneSchema, () => undefined),
});

const deltaWriter = new MessageWriter<DeltaDiscoveryResponse, Encoded<DeltaAnswer>>(DeltaDiscoveryResponseSchema, {
  systemVersionInfo: string((a) => a.systemVersionInfo),
  resources: encodedList(ResourceSchema, (a) => a.encoded),
  typeUrl: string((a) => a.typeUrl),
  removedResources: strings((a) => a.removed),
  removedResourceNames: encodedList(ResourceNameSchema, () => []),
  nonce: string((a) => a.nonce),
  controlPlane: encoded(ControlPlaneSchema, () => undefined),
});

/** sotwResponse is a DiscoveryResponse ready to write: its frame or bytes from the shared resource encodings, its message for JSON. */
export function sotwResponse(answer: SotwAnswer): Outgoing {
  const a = { ...answer, encoded: answer.resources.map(anyOf) };
  return {
    message: () => create(DiscoveryResponseSchema, sotwWriter.init(a)),
    bytes: () => sotwWriter.encode(a),
    frame: () => sotwWriter.frame(a),
  };
}

/** deltaResponse is a DeltaDiscoveryResponse ready to write, as sotwResponse. */
export function deltaResponse(answer: DeltaAnswer): Outgoing {
  const a = { ...answer, encoded: answer.resources.map(resourceOf) };
  return {
    message: () => create(DeltaDiscoveryResponseSchema, deltaWriter.init(a)),
    bytes: () => deltaWriter.encode(a),
    frame: () => deltaWriter.frame(a),
  };
}
