import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { instanceDigest, type DigestContent } from "../src/instance-digest.js";

interface Vectors {
  instances: Array<{ instance: DigestContent; digest: string }>;
}

const vectors = JSON.parse(readFileSync(new URL("../../../testdata/instance-digest.json", import.meta.url), "utf8")) as Vectors;

/** bySpec computes the digest as registry.proto's WatchHoldings words it, written apart from instanceDigest (keys ordered by code point, which is UTF-8 byte order). */
function bySpec(i: DigestContent): bigint {
  const items = [i.service, i.instanceId, i.host, `${i.port}`, i.version, i.zone, `${i.tags.length}`, ...i.tags];
  const codePoints = (s: string): number[] => Array.from(s, (c) => c.codePointAt(0)!);
  const keys = Object.keys(i.metadata).sort((a, b) => {
    const x = codePoints(a);
    const y = codePoints(b);
    for (let k = 0; k < Math.min(x.length, y.length); k++) if (x[k] !== y[k]) return x[k]! - y[k]!;
    return x.length - y.length;
  });
  items.push(`${keys.length}`, ...keys.flatMap((k) => [k, i.metadata[k]!]), `${i.weight}`, `${i.status}`, i.owner, `${i.operatorStatus}`);
  const bytes: number[] = [];
  for (const item of items) {
    const b = new TextEncoder().encode(item);
    bytes.push((b.length >>> 24) & 255, (b.length >>> 16) & 255, (b.length >>> 8) & 255, b.length & 255, ...b);
  }
  const hex = createHash("sha256").update(Uint8Array.from(bytes)).digest("hex");
  return BigInt(`0x${hex.slice(0, 16)}`);
}

describe("instance content digests (testdata/instance-digest.json)", () => {
  it("reproduces every shared vector, and the definition in registry.proto", () => {
    expect(vectors.instances.length).toBeGreaterThan(10);
    for (const v of vectors.instances) {
      expect(instanceDigest(v.instance), JSON.stringify(v.instance)).toBe(BigInt(v.digest));
      expect(bySpec(v.instance), JSON.stringify(v.instance)).toBe(BigInt(v.digest));
    }
  });

  it("tells apart what a client acts on, and ignores what a registry sets for itself", () => {
    const [base] = vectors.instances;
    const d = instanceDigest(base!.instance);
    expect(instanceDigest({ ...base!.instance, port: base!.instance.port + 1 })).not.toBe(d);
    expect(instanceDigest({ ...base!.instance, metadata: { k: "v" } })).not.toBe(d);
    const withRevisions = { ...base!.instance, createRevision: 7n, modRevision: 9n, registeredAt: { seconds: 1n } } as DigestContent;
    expect(instanceDigest(withRevisions)).toBe(d);
  });
});
