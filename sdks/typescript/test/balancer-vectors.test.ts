import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { HashRing, fmix32, fnv1a32, hash32, rendezvous } from "../src/balancer.js";

interface Vectors {
  fmix32: Array<{ input: number; output: number }>;
  hash32: Array<{ input: string; fnv1a32: number; hash32: number }>;
  consistent_hash: Array<{ instances: string[]; picks: Array<{ key: string; instance: string }> }>;
  rendezvous: Array<{ instances: string[]; picks: Array<{ key: string; instance: string }> }>;
}

const vectors = JSON.parse(
  readFileSync(new URL("../../../testdata/hash-vectors.json", import.meta.url), "utf8"),
) as Vectors;

describe("shared hash vectors (testdata/hash-vectors.json)", () => {
  it("FNV-1a matches its published reference values", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
    expect(fmix32(1)).toBe(0x514e28b7);
  });

  it("reproduces fmix32, fnv1a32 and hash32", () => {
    for (const v of vectors.fmix32) expect(fmix32(v.input)).toBe(v.output);
    for (const v of vectors.hash32) {
      expect(fnv1a32(v.input), v.input).toBe(v.fnv1a32);
      expect(hash32(v.input), v.input).toBe(v.hash32);
    }
  });

  it("reproduces the ring and rendezvous picks", () => {
    for (const set of vectors.consistent_hash) {
      const ring = new HashRing(set.instances);
      for (const p of set.picks) expect(set.instances[ring.lookup(p.key)], p.key).toBe(p.instance);
    }
    for (const set of vectors.rendezvous) {
      for (const p of set.picks) expect(set.instances[rendezvous(set.instances, p.key)], p.key).toBe(p.instance);
    }
  });

  it("covers non-ASCII keys and several instance sets", () => {
    expect(vectors.hash32.some((v) => /[^\x00-\x7f]/.test(v.input))).toBe(true);
    expect(vectors.consistent_hash.length).toBeGreaterThanOrEqual(4);
  });
});
