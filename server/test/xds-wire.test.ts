import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, deltaResponse, sotwResponse } from "../src/wire/xds-wire.js";
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
} from "../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js";
import { packed, type Packed } from "../src/xds/resources.js";

// The xDS response writers (wire/xds-wire.ts) against protobuf-es: for
// random responses, the bytes and the frame equal toBinary's, and the
// message form equals the message; the fast request readers read what
// fromBinary reads, for ACKs and for requests they hand to fromBinary.

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

  const node = fc.option(fc.record({ id: text, zone: text }).map(({ id, zone }) => ({ id, locality: { zone } })), { nil: undefined });
  const errorDetail = fc.option(fc.record({ code: fc.integer({ min: 0, max: 16 }), message: text }), { nil: undefined });

  it("property: decodeDiscoveryRequest reads what fromBinary reads", () => {
    fc.assert(
      fc.property(text, fc.array(text, { maxLength: 5 }), text, text, node, errorDetail, (versionInfo, resourceNames, typeUrl, responseNonce, n, e) => {
        const bytes = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { versionInfo, resourceNames, typeUrl, responseNonce, node: n, errorDetail: e }));
        const want = fromBinary(DiscoveryRequestSchema, bytes);
        const got = decodeDiscoveryRequest(bytes);
        for (const k of ["versionInfo", "resourceNames", "typeUrl", "responseNonce"] as const) expect(got[k]).toEqual(want[k]);
        expect(got.node?.locality?.zone).toEqual(want.node?.locality?.zone);
        expect(got.errorDetail?.message).toEqual(want.errorDetail?.message);
      }),
    );
  });

  it("property: decodeDeltaDiscoveryRequest reads what fromBinary reads", () => {
    fc.assert(
      fc.property(text, fc.array(text, { maxLength: 5 }), fc.array(text, { maxLength: 3 }), text, node, errorDetail, fc.dictionary(text, text, { maxKeys: 2 }), (typeUrl, sub, unsub, responseNonce, n, e, initial) => {
        const bytes = toBinary(
          DeltaDiscoveryRequestSchema,
          create(DeltaDiscoveryRequestSchema, { typeUrl, resourceNamesSubscribe: sub, resourceNamesUnsubscribe: unsub, responseNonce, node: n, errorDetail: e, initialResourceVersions: initial }),
        );
        const want = fromBinary(DeltaDiscoveryRequestSchema, bytes);
        const got = decodeDeltaDiscoveryRequest(bytes);
        for (const k of ["typeUrl", "resourceNamesSubscribe", "resourceNamesUnsubscribe", "responseNonce", "initialResourceVersions"] as const) expect(got[k]).toEqual(want[k]);
        expect(got.node?.locality?.zone).toEqual(want.node?.locality?.zone);
        expect(got.errorDetail?.message).toEqual(want.errorDetail?.message);
      }),
    );
  });

  it("garbage is refused as fromBinary refuses it; invalid UTF-8 goes to fromBinary", () => {
    const bad = new Uint8Array([0x22, 0x05, 0x61]); // type_url of 5 bytes, 1 there
    expect(() => decodeDiscoveryRequest(bad)).toThrow();
    expect(() => decodeDeltaDiscoveryRequest(bad)).toThrow();
    const latin = new Uint8Array([0x22, 0x01, 0xe9]); // type_url "\xe9": not UTF-8
    expect(() => fromBinary(DiscoveryRequestSchema, latin)).toThrow();
    expect(() => decodeDiscoveryRequest(latin)).toThrow();
  });
});
