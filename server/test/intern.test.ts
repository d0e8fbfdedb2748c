import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { recordOf, type InstanceSpec } from "../src/domain/instance.js";
import { shared, sharedMetadata, sharedTags } from "../src/domain/intern.js";

const spec = (over: Partial<InstanceSpec> = {}): InstanceSpec => ({
  namespace: "default",
  service: "payments",
  instanceId: "p-1",
  host: "10.0.0.1",
  port: 8080,
  version: "1.2.3",
  zone: "eu-1a",
  tags: ["grpc", "http"],
  metadata: { build: "b7", team: "pay" },
  weight: 100,
  status: "SERVING",
  owner: "anonymous",
  ...over,
});

// Strings built at run time, so that equal values are distinct objects (as
// two requests' decoded fields are) and sharing is observable.
const fresh = (s: string): string => [...s].join("");

describe("shared values of records", () => {
  it("gives records with equal values one copy of each, and keeps their content", () => {
    const a = recordOf(spec({ service: fresh("payments"), tags: [fresh("grpc"), fresh("http")], metadata: { build: fresh("b7"), team: fresh("pay") } }), 1, 1, 1, 1);
    const b = recordOf(spec({ instanceId: "p-2", service: fresh("payments"), tags: [fresh("grpc"), fresh("http")], metadata: { build: fresh("b7"), team: fresh("pay") } }), 2, 2, 2, 2);
    expect(a.tags).toBe(b.tags);
    expect(a.metadata).toBe(b.metadata);
    expect(a.tags).toEqual(["grpc", "http"]);
    expect(a.metadata).toEqual({ build: "b7", team: "pay" });
    expect(Object.isFrozen(a.tags) && Object.isFrozen(a.metadata)).toBe(true);
  });

  it("never merges different tag lists or metadata", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6, unit: "binary" }), { maxLength: 4 }),
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6, unit: "binary" }), { maxLength: 4 }),
        fc.dictionary(fc.string({ minLength: 1, maxLength: 4, unit: "binary" }), fc.string({ maxLength: 4, unit: "binary" }), { maxKeys: 3 }),
        fc.dictionary(fc.string({ minLength: 1, maxLength: 4, unit: "binary" }), fc.string({ maxLength: 4, unit: "binary" }), { maxKeys: 3 }),
        (t1, t2, m1, m2) => {
          const [a, b] = [sharedTags([...t1].sort()), sharedTags([...t2].sort())];
          expect(a).toEqual([...t1].sort());
          expect(b).toEqual([...t2].sort());
          if (a === b) expect([...t1].sort()).toEqual([...t2].sort());
          const [x, y] = [sharedMetadata(m1), sharedMetadata(m2)];
          expect(x).toEqual(m1);
          expect(y).toEqual(m2);
          if (x === y) expect(Object.entries(m1)).toEqual(Object.entries(m2));
        },
      ),
    );
  });

  it("keeps lists and objects apart whose joined text would be equal", () => {
    expect(sharedTags(["a\0b"])).toEqual(["a\0b"]);
    expect(sharedTags(["a", "b"])).toEqual(["a", "b"]);
    expect(sharedTags(["1:a1:b"])).toEqual(["1:a1:b"]);
    expect(sharedMetadata({ a: "b\0c\0d" })).toEqual({ a: "b\0c\0d" });
    expect(sharedMetadata({ a: "b", c: "d" })).toEqual({ a: "b", c: "d" });
    expect(sharedMetadata({ a: "1:b1:c" })).toEqual({ a: "1:b1:c" });
    expect(sharedMetadata({ a: "", b: "1:c" })).toEqual({ a: "", b: "1:c" });
  });

  it("is bounded: unique values (a build id per instance) start the table over instead of growing it", () => {
    // 200,000 unique values through a table of 65,536: still correct, and an early value is no longer the shared copy
    const first = fresh("unique-0");
    expect(shared(first)).toBe(first);
    for (let i = 1; i < 200_000; i++) shared(`unique-${i}`);
    const again = fresh("unique-0");
    expect(shared(again)).toBe(again);
    expect(shared(fresh("unique-0"))).toBe(again);
  });

  it("does not share long values", () => {
    const long = fresh("x".repeat(300));
    expect(shared(long)).toBe(long);
    const other = fresh("x".repeat(300));
    expect(shared(other)).toBe(other);
  });
});
