import { create, toBinary } from "@bufbuild/protobuf";
import { RegisterRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryError } from "../src/domain/errors.js";
import type { FilterSpec } from "../src/domain/filter.js";
import type { DiscoverQuery } from "../src/registry/registry.js";
import { DEFAULT_LIMITS, textOf, watchServicesOf } from "../src/registry/validate.js";
import { Connections } from "../src/rpc/connections.js";
import { ttlOf } from "../src/wire/convert.js";
import { instance, makeCore } from "./support/core.js";
import { postJson, startInProcess } from "./support/in-process.js";

// Bad values are refused with INVALID_ARGUMENT naming the field and the
// rule, and a limit names the setting that raises it: through the core, and
// through a real server over plain fetch with Connect JSON.

const CONTROLS = ["\u0000", "\u0001", "\u0009", "\u000a", "\u001b", "\u001f", "\u007f", "\u0080", "\u0085", "\u009f"];

function codeOf(ch: string): string {
  return `U+${ch.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

async function registerError(over: Parameters<typeof instance>[1], ttlMs?: number): Promise<RegistryError> {
  const { registry } = makeCore();
  const err = await registry.register(instance("a", over), ttlMs).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RegistryError);
  return err as RegistryError;
}

function query(over: Partial<DiscoverQuery> = {}): DiscoverQuery {
  return { namespace: "", service: "payments", filter: undefined, strategy: "ROUND_ROBIN", hashKey: "", preferredZone: "", includeAll: false, ...over };
}

function filter(over: Partial<FilterSpec>): FilterSpec {
  return { tags: [], version: "", zone: "", metadata: {}, ...over };
}

describe("control characters", () => {
  it.each(CONTROLS)("are refused in every string field of an instance (%j)", async (ch) => {
    const at = (field: string, i: number) => `${field}: must not contain control characters (${codeOf(ch)} at ${i})`;
    const cases: Array<[Parameters<typeof instance>[1], string]> = [
      [{ host: `ab${ch}c` }, at("instance.host", 2)],
      [{ version: `1.0${ch}` }, at("instance.version", 3)],
      [{ zone: `${ch}eu` }, at("instance.zone", 0)],
      [{ tags: ["ok", "ok", `abc${ch}`] }, at("instance.tags[2]", 3)],
      [{ metadata: { env: `pr${ch}od` } }, at('instance.metadata["env"]', 2)],
      [{ metadata: { [`e${ch}nv`]: "prod" } }, `instance.metadata: keys must not contain control characters (${codeOf(ch)} at 1), got ${JSON.stringify(`e${ch}nv`)}`],
    ];
    for (const [over, message] of cases) {
      const err = await registerError(over);
      expect(err.reason).toBe("INVALID_ARGUMENT");
      expect(err.message).toBe(message);
    }
  });

  it.each(CONTROLS)("are refused in every string field of a filter and in preferred_zone (%j)", (ch) => {
    const { registry } = makeCore();
    const at = (field: string, i: number) => `${field}: must not contain control characters (${codeOf(ch)} at ${i})`;
    expect(() => registry.discover(query({ filter: filter({ tags: ["y", `x${ch}`] }) }))).toThrow(at("filter.tags[1]", 1));
    expect(() => registry.discover(query({ filter: filter({ version: `${ch}` }) }))).toThrow(at("filter.version", 0));
    expect(() => registry.discover(query({ filter: filter({ zone: `eu${ch}` }) }))).toThrow(at("filter.zone", 2));
    expect(() => registry.discover(query({ filter: filter({ metadata: { k: `v${ch}` } }) }))).toThrow(at('filter.metadata["k"]', 1));
    expect(() => registry.discover(query({ filter: filter({ metadata: { [`${ch}k`]: "v" } }) }))).toThrow(
      `filter.metadata: keys must not contain control characters (${codeOf(ch)} at 0)`,
    );
    expect(() => registry.discover(query({ preferredZone: `z${ch}` }))).toThrow(at("preferred_zone", 1));
  });

  it.each(CONTROLS)("are refused in names by their pattern (%j)", async (ch) => {
    expect((await registerError({ namespace: `a${ch}` })).message).toContain("instance.namespace: must be 1..128 characters of [A-Za-z0-9._-]");
    expect((await registerError({ service: `a${ch}` })).message).toContain("instance.service: must be 1..128 characters of [A-Za-z0-9._-]");
    expect((await registerError({ instanceId: `a${ch}` })).message).toContain("instance.instance_id: must be 1..128 characters of [A-Za-z0-9._:-]");
  });

  it("refuses lone surrogates, which have no UTF-8 form", async () => {
    expect((await registerError({ tags: ["a\ud800"] })).message).toBe("instance.tags[0]: must be well-formed Unicode (lone surrogate U+D800 at 1)");
    expect((await registerError({ metadata: { k: "\udc00x" } })).message).toBe('instance.metadata["k"]: must be well-formed Unicode (lone surrogate U+DC00 at 0)');
  });

  it("accepts printable Unicode anywhere a string is free-form", async () => {
    const { registry } = makeCore();
    const host = `${"ü".repeat(200)}.例え.テスト`;
    const r = await registry.register(
      instance("a", { host, version: "v1 ✓", zone: "zone\u00a01", tags: ["🚀", "naïve"], metadata: { "clé": "välue — 👍", json: '{"a": [1, 2]}' } }),
      undefined,
    );
    expect(r.instance).toMatchObject({ host, tags: ["naïve", "🚀"], metadata: { "clé": "välue — 👍" } });
  });

  it("checks the length of a host before its characters", async () => {
    expect((await registerError({ host: "h".repeat(254) })).message).toBe("instance.host: must be at most 253 characters, got 254");
  });
});

describe("properties", () => {
  it("textOf accepts exactly the strings with no control character and no lone surrogate, and names the first offender", () => {
    const control = (c: number) => c <= 0x1f || (c >= 0x7f && c <= 0x9f);
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (s) => {
        const bad = [...s].findIndex((ch) => control(ch.charCodeAt(0)));
        const lone = [...s].some((ch) => ch.length === 1 && ch >= "\ud800" && ch <= "\udfff");
        let message: string | undefined;
        try {
          expect(textOf("f", s)).toBe(s);
        } catch (e) {
          message = (e as RegistryError).message;
        }
        if (bad < 0 && !lone) return message === undefined;
        if (bad >= 0) {
          const at = s.search(/[\u0000-\u001f\u007f-\u009f]/);
          return message === `f: must not contain control characters (${codeOf(s[at]!)} at ${at})`;
        }
        return message?.startsWith("f: must be well-formed Unicode (lone surrogate U+D") === true;
      }),
    );
  });

  it("ttlOf accepts exactly the well-formed non-negative Durations, with protobuf-es's value", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 12n), max: 10n ** 12n }), fc.integer({ min: -3_000_000_000, max: 3_000_000_000 }), (seconds, nanos) => {
        const d = { $typeName: "google.protobuf.Duration" as const, seconds, nanos };
        const ok = seconds >= 0n && nanos >= 0 && nanos <= 999_999_999;
        let got: number | undefined;
        let err: unknown;
        try {
          got = ttlOf(d);
        } catch (e) {
          err = e;
        }
        return ok ? got === Number(seconds) * 1000 + Math.round(nanos / 1e6) : err instanceof RegistryError && err.message.startsWith("lease_ttl: ");
      }),
    );
  });
});

describe("lease TTL durations", () => {
  it.each([
    [{ seconds: 1n, nanos: 2_000_000_000 }, "lease_ttl: nanos must be within ±999,999,999 and have the sign of seconds, got {1s, 2000000000ns}"],
    [{ seconds: 0n, nanos: -1_000_000_000 }, "lease_ttl: nanos must be within ±999,999,999 and have the sign of seconds, got {0s, -1000000000ns}"],
    [{ seconds: 5n, nanos: -1 }, "lease_ttl: nanos must be within ±999,999,999 and have the sign of seconds, got {5s, -1ns}"],
    [{ seconds: -5n, nanos: 1 }, "lease_ttl: nanos must be within ±999,999,999 and have the sign of seconds, got {-5s, 1ns}"],
    [{ seconds: -5n, nanos: 0 }, "lease_ttl: must not be negative, got {-5s, 0ns}"],
    [{ seconds: 0n, nanos: -500_000_000 }, "lease_ttl: must not be negative, got {0s, -500000000ns}"],
  ])("refuses %o", (d, message) => {
    const err = (() => {
      try {
        ttlOf({ $typeName: "google.protobuf.Duration", ...d });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).reason).toBe("INVALID_ARGUMENT");
    expect((err as RegistryError).message).toBe(message);
  });

  it("names the field it is given, and converts well-formed durations", () => {
    expect(() => ttlOf({ $typeName: "google.protobuf.Duration", seconds: -1n, nanos: 0 }, "beats[2].lease_ttl")).toThrow(
      "beats[2].lease_ttl: must not be negative",
    );
    expect(ttlOf(undefined)).toBeUndefined();
    expect(ttlOf({ $typeName: "google.protobuf.Duration", seconds: 1n, nanos: 999_999_999 })).toBe(2_000);
    expect(ttlOf({ $typeName: "google.protobuf.Duration", seconds: 30n, nanos: 0 })).toBe(30_000);
  });
});

describe("hash strategies", () => {
  it.each(["CONSISTENT_HASH", "RENDEZVOUS"] as const)("%s without hash_key is INVALID_ARGUMENT before any lookup", async (strategy) => {
    const { registry } = makeCore();
    // No such service: the answer is still about the missing key, not NOT_FOUND.
    expect(() => registry.discover(query({ service: "nowhere", strategy }))).toThrow(
      expect.objectContaining({ reason: "INVALID_ARGUMENT", message: `hash_key: is required for STRATEGY_${strategy}` }),
    );
    await registry.register(instance("a"), undefined);
    expect(() => registry.discover(query({ strategy }))).toThrow(`hash_key: is required for STRATEGY_${strategy}`);
    expect(registry.discover(query({ strategy, hashKey: "user-1" })).chosen!.instanceId).toBe("a");
  });
});

describe("limits name their setting", () => {
  it.each([
    [{ maxTags: 4 }, { tags: ["a", "b", "c", "d", "e"] }, "instance.tags: at most 4 tags (MAXINE_MAX_TAGS), got 5"],
    [{ maxTagLength: 3 }, { tags: ["abcd"] }, "instance.tags[0]: at most 3 characters (MAXINE_MAX_TAG_LENGTH), got 4"],
    [{ maxMetadataEntries: 1 }, { metadata: { a: "1", b: "2" } }, "instance.metadata: at most 1 entries (MAXINE_MAX_METADATA_ENTRIES), got 2"],
    [{ maxMetadataBytes: 4 }, { metadata: { ab: "cde" } }, "instance.metadata: at most 4 bytes of keys and values (MAXINE_MAX_METADATA_BYTES), got 5"],
  ])("%j refuses %j", async (limits, over, message) => {
    const { registry } = makeCore({ limits });
    await expect(registry.register(instance("a", over), undefined)).rejects.toMatchObject({ reason: "INVALID_ARGUMENT", message });
  });

  it("counts tags and metadata without duplicates, and before sorting them", async () => {
    const { registry } = makeCore({ limits: { maxTags: 2 } });
    const many = Array.from({ length: 200_000 }, (_, i) => `t${i}`);
    await expect(registry.register(instance("a", { tags: many }), undefined)).rejects.toThrow("instance.tags: at most 2 tags (MAXINE_MAX_TAGS), got 200000");
    const r = await registry.register(instance("a", { tags: Array.from({ length: 1000 }, () => "same") }), undefined);
    expect(r.instance.tags).toEqual(["same"]);
  });

  it("applies the tag and metadata limits to filters", () => {
    const { registry } = makeCore({ limits: { maxTags: 1, maxMetadataEntries: 1 } });
    expect(() => registry.discover(query({ filter: filter({ tags: ["a", "b"] }) }))).toThrow("filter.tags: at most 1 tags (MAXINE_MAX_TAGS), got 2");
    expect(() => registry.discover(query({ filter: filter({ metadata: { a: "", b: "" } }) }))).toThrow(
      "filter.metadata: at most 1 entries (MAXINE_MAX_METADATA_ENTRIES), got 2",
    );
  });

  it("names MAXINE_MAX_INSTANCES_PER_SERVICE, MAXINE_MAX_HEARTBEAT_STREAMS and the lease TTL bounds", async () => {
    const { registry } = makeCore({ limits: { maxInstancesPerService: 1 }, lease: { maxHeartbeatStreams: 1 } });
    await registry.register(instance("a"), undefined);
    await expect(registry.register(instance("b"), undefined)).rejects.toMatchObject({
      reason: "RESOURCE_EXHAUSTED",
      message: "instance: service default/payments already holds the maximum of 1 instances (MAXINE_MAX_INSTANCES_PER_SERVICE)",
    });
    const s = registry.openStream();
    expect(() => registry.openStream()).toThrow(
      expect.objectContaining({ reason: "RESOURCE_EXHAUSTED", message: "heartbeat: the server holds the maximum of 1 heartbeat streams (MAXINE_MAX_HEARTBEAT_STREAMS)" }),
    );
    registry.closeStream(s);
    await expect(registry.register(instance("a"), 999)).rejects.toThrow(
      "lease_ttl: must be 1s..3600s (MAXINE_LEASE_TTL_MIN..MAXINE_LEASE_TTL_MAX), got 0.999s",
    );
  });

  it("names MAXINE_MAX_WATCHERS", () => {
    const { hub } = makeCore({ watch: { maxWatchers: 1 } });
    const w = hub.watch({ namespace: "default", services: [], filter: filter({}), resumeRevision: 0, registryId: "" });
    expect(() => hub.watch({ namespace: "default", services: [], filter: filter({}), resumeRevision: 0, registryId: "" })).toThrow(
      expect.objectContaining({ reason: "RESOURCE_EXHAUSTED", message: "watch: the server holds the maximum of 1 watch streams (MAXINE_MAX_WATCHERS)" }),
    );
    w.end();
    hub.close();
  });

  it("names MAXINE_MAX_WATCHERS_PER_CONNECTION and MAXINE_MAX_HEARTBEATS_PER_CONNECTION", () => {
    const conn = new Connections({ maxWatchersPerConnection: 1, maxHeartbeatsPerConnection: 2, maxBufferedBytesPerConnection: 1 << 20 }, 1 << 20).ofOwner({});
    conn.acquire("watchers", "anonymous");
    expect(() => conn.acquire("watchers", "anonymous")).toThrow("watch: this connection already holds the maximum of 1 watch streams (MAXINE_MAX_WATCHERS_PER_CONNECTION)");
    conn.acquire("heartbeats", "anonymous");
    conn.acquire("heartbeats", "anonymous");
    expect(() => conn.acquire("heartbeats", "anonymous")).toThrow(
      "heartbeat: this connection already holds the maximum of 2 heartbeat streams (MAXINE_MAX_HEARTBEATS_PER_CONNECTION)",
    );
  });

  it("names MAXINE_MAX_WATCH_SERVICES, counting each service once", () => {
    const limits = { ...DEFAULT_LIMITS, maxWatchServices: 2 };
    expect(watchServicesOf("services", ["a", "b", "a"], limits)).toEqual(["a", "b"]);
    expect(() => watchServicesOf("services", ["a", "b", "c"], limits)).toThrow("services: at most 2 services (MAXINE_MAX_WATCH_SERVICES), got 3");
    expect(() => watchServicesOf("services", ["a", "b\u0000"], limits)).toThrow("services[1]: must be 1..128 characters of [A-Za-z0-9._-]");
  });
});

describe("over HTTP with Connect JSON", () => {
  let server: Awaited<ReturnType<typeof startInProcess>>;
  beforeAll(async () => {
    server = await startInProcess({ MAXINE_MAX_TAGS: "4", MAXINE_MAX_INSTANCES_PER_SERVICE: "1" });
  });
  afterAll(async () => {
    await server.close();
  });

  const body = (over: Record<string, unknown> = {}, rest: Record<string, unknown> = {}) => ({
    instance: { service: "http-validation", instanceId: "a", host: "10.0.0.1", port: 8080, ...over },
    ...rest,
  });

  it.each([
    [body({ host: "10.0.0.1\u0000" }), "instance.host: must not contain control characters (U+0000 at 8)"],
    [body({ tags: ["ok", "a\u001b[31m"] }), "instance.tags[1]: must not contain control characters (U+001B at 1)"],
    [body({ metadata: { env: "prod\u0085" } }), 'instance.metadata["env"]: must not contain control characters (U+0085 at 4)'],
    [body({ version: "\u007f" }), "instance.version: must not contain control characters (U+007F at 0)"],
    [body({ tags: ["a", "b", "c", "d", "e"] }), "instance.tags: at most 4 tags (MAXINE_MAX_TAGS), got 5"],
    [body({}, { leaseTtl: "-5s" }), "lease_ttl: must not be negative, got {-5s, 0ns}"],
    [body({}, { leaseTtl: "0.5s" }), "lease_ttl: must be 1s..3600s (MAXINE_LEASE_TTL_MIN..MAXINE_LEASE_TTL_MAX), got 0.5s"],
  ])("Register %j is invalid_argument naming the field", async (req, message) => {
    const res = await postJson(server.url, "Register", req);
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ code: "invalid_argument", message });
  });

  it("refuses a Duration whose nanos exceed a second (sent as protobuf binary: JSON cannot say it)", async () => {
    const req = create(RegisterRequestSchema, {
      instance: { service: "http-validation", instanceId: "a", host: "10.0.0.1", port: 8080 },
      leaseTtl: { seconds: 1n, nanos: 2_000_000_000 },
    });
    const res = await fetch(`${server.url}/maxine.registry.v1.RegistryService/Register`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: toBinary(RegisterRequestSchema, req),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      code: "invalid_argument",
      message: "lease_ttl: nanos must be within ±999,999,999 and have the sign of seconds, got {1s, 2000000000ns}",
    });
  });

  it("Discover with a hash strategy and no hash_key is invalid_argument, service or not", async () => {
    for (const service of ["no-such-service", "http-validation"]) {
      const res = await postJson(server.url, "Discover", { service, strategy: "STRATEGY_CONSISTENT_HASH" });
      expect(res.status).toBe(400);
      expect(res.json).toEqual({ code: "invalid_argument", message: "hash_key: is required for STRATEGY_CONSISTENT_HASH" });
    }
  });

  it("Discover refuses control characters in the filter", async () => {
    const res = await postJson(server.url, "Discover", { service: "http-validation", filter: { zone: "eu\u0000" } });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ code: "invalid_argument", message: "filter.zone: must not contain control characters (U+0000 at 2)" });
  });

  it("a full service is resource_exhausted naming MAXINE_MAX_INSTANCES_PER_SERVICE", async () => {
    expect((await postJson(server.url, "Register", body({ instanceId: "first" }))).status).toBe(200);
    const res = await postJson(server.url, "Register", body({ instanceId: "second" }));
    expect(res.status).toBe(429);
    expect(res.json).toEqual({
      code: "resource_exhausted",
      message: "instance: service default/http-validation already holds the maximum of 1 instances (MAXINE_MAX_INSTANCES_PER_SERVICE)",
    });
  });
});
