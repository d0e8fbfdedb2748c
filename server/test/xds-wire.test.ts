import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deltaResponse, sotwResponse } from "../src/wire/xds-wire.js";
import { DeltaDiscoveryResponseSchema, DiscoveryResponseSchema } from "../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js";
import { packed, type Packed } from "../src/xds/resources.js";

// The xDS response writers (wire/xds-wire.ts) against protobuf-es: for
// random responses, the bytes and the frame equal toBinary's, and the
// message form equals the message.

const text = fc.string({ maxLength: 40, unit: fc.constantFrom("a", "Z", "0", "/", ";", "=", ".", "é", "€", "😀") });
const resource = fc
  .record({ name: text, typeUrl: text, value: fc.uint8Array({ maxLength: 300 }) })
  .map(({ name, typeUrl, value }): Packed => packed(name, create(AnySchema, { typeUrl, value })));
const resources = fc.array(resource, { maxLength: 8 });

describe("xDS response writers", () => {
  it("property: a DiscoveryResponse is written as toBinary writes it", () => {
    fc.assert(
      fc.property(text, resources, text, text, (versionInfo, rs, typeUrl, nonce) => {
        const want = toBinary(DiscoveryResponseSchema, create(DiscoveryResponseSchema, { versionInfo, resources: rs.map((r) => r.any), typeUrl, nonce }));
        const out = sotwResponse({ versionInfo, resources: rs, typeUrl, nonce });
        expect(Buffer.from(out.bytes!()).equals(Buffer.from(want))).toBe(true);
        const frame = out.frame!();
        expect(new DataView(frame.buffer, frame.byteOffset).getUint32(1)).toBe(want.length);
        expect(Buffer.from(frame.subarray(5)).equals(Buffer.from(want))).toBe(true);
        expect(toBinary(DiscoveryResponseSchema, out.message() as never)).toEqual(want);
      }),
    );
  });

  it("property: a DeltaDiscoveryResponse is written as toBinary writes it (each Resource with its name, version and Any)", () => {
    fc.assert(
      fc.property(text, resources, fc.array(text, { maxLength: 5 }), text, text, (systemVersionInfo, rs, removed, typeUrl, nonce) => {
        const want = toBinary(
          DeltaDiscoveryResponseSchema,
          create(DeltaDiscoveryResponseSchema, {
            systemVersionInfo,
            resources: rs.map((r) => ({ name: r.name, version: r.version, resource: r.any })),
            removedResources: removed,
            typeUrl,
            nonce,
          }),
        );
        const out = deltaResponse({ systemVersionInfo, resources: rs, removed, typeUrl, nonce });
        expect(Buffer.from(out.bytes!()).equals(Buffer.from(want))).toBe(true);
        expect(Buffer.from(out.frame!().subarray(5)).equals(Buffer.from(want))).toBe(true);
        const decoded = fromBinary(DeltaDiscoveryResponseSchema, out.bytes!());
        expect(decoded.resources.map((r) => r.version)).toEqual(rs.map((r) => r.version));
      }),
    );
  });
});
