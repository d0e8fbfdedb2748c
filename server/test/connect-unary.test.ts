import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema, DiscoverResponseSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { grpcFrame } from "./support/grpc-frame.js";
import { postJson, startInProcess } from "./support/in-process.js";

// Connect unary calls framed by Maxine's transport must be answered exactly
// as connect-es answers them: every case below is asked of a server with
// MAXINE_FAST_PATH=on and of the reference, a server with it off (the same
// handlers framed by connect-es), with the same request bytes, and the
// answers compared (registry ids and times aside: two servers).

/** comparable parses an answer, leaving out what differs between two servers: registry ids and times. */
function comparable(text: string): unknown {
  return JSON.parse(text, (k, v) => (["registryId", "registeredAt", "updatedAt", "leaseExpiresAt"].includes(k) ? undefined : v));
}

describe("Connect unary, Maxine's framing against connect-es's", () => {
  let server: Maxine & { url: string };
  let reference: Maxine & { url: string };
  const url = (method = "Discover", base = server.url) => `${base}/maxine.registry.v1.RegistryService/${method}`;

  beforeAll(async () => {
    server = await startInProcess({ MAXINE_MAX_MESSAGE_BYTES: "2048" });
    reference = await startInProcess({ MAXINE_MAX_MESSAGE_BYTES: "2048", MAXINE_FAST_PATH: "off" });
    for (const s of [server, reference]) {
      for (const id of ["a", "b", "c"]) {
        const r = await postJson(s.url, "Register", { instance: { service: "fd", instanceId: id, host: "10.3.0.1", port: 80, zone: id === "c" ? "z2" : "z1" } });
        expect(r.status).toBe(200);
      }
    }
  });
  afterAll(async () => {
    await server.close();
    await reference.close();
  });

  async function both(body: string | Buffer, headers: Record<string, string> = {}, method = "Discover", contentType = "application/json") {
    const ask = async (base: string) => {
      const res = await fetch(url(method, base), { method: "POST", headers: { "content-type": contentType, ...headers }, body });
      return { status: res.status, contentType: res.headers.get("content-type"), text: await res.text() };
    };
    return { fast: await ask(server.url), generic: await ask(reference.url) };
  }

  it.each([
    ["a consistent-hash pick with every instance", { service: "fd", strategy: "STRATEGY_CONSISTENT_HASH", hashKey: "user-1", includeAll: true }],
    ["a preferred zone and a filter", { service: "fd", strategy: "STRATEGY_RENDEZVOUS", hashKey: "k", preferredZone: "z2", filter: { zone: "z2" } }],
    ["unknown fields, ignored", { service: "fd", strategy: "STRATEGY_RENDEZVOUS", hashKey: "k", someFutureField: 1 }],
    ["a service with no instance", { service: "nobody" }],
    ["an invalid service name", { service: "Not Valid" }],
    ["a hash strategy without a key", { service: "fd", strategy: "STRATEGY_RENDEZVOUS" }],
    ["an unknown enum number", { service: "fd", strategy: 42 }],
  ])("answers %s like connect-es", async (_what, body) => {
    for (const contentType of ["application/json", "application/json; charset=UTF-8"]) {
      const { fast, generic } = await both(JSON.stringify(body), {}, "Discover", contentType);
      expect(fast.status).toBe(generic.status);
      expect(fast.contentType).toBe("application/json");
      expect(comparable(fast.text)).toEqual(comparable(generic.text));
    }
  });

  it.each([
    ["ListServices", {}],
    ["ListServices", { namespace: "Bad NS" }],
    ["Register", { instance: { service: "fd", instanceId: "bad", host: "10.3.0.1", port: 0 } }],
    ["Register", { instance: { service: "fd", instanceId: "bad", host: "10.3.0.1", port: 80, status: 9 } }],
    ["Register", { instance: { service: "fd" } }],
    ["Deregister", { key: { service: "fd", instanceId: "never-registered" } }],
    ["Deregister", {}],
  ])("answers %s %j like connect-es", async (method, body) => {
    const { fast, generic } = await both(JSON.stringify(body), {}, method);
    expect(fast.status).toBe(generic.status);
    expect(comparable(fast.text)).toEqual(comparable(generic.text));
  });

  it("registers and deregisters alike (JSON and protobuf)", async () => {
    const inst = { instance: { service: "fd", instanceId: "r1", host: "10.3.0.9", port: 81, metadata: { a: "b" } } };
    const { fast, generic } = await both(JSON.stringify(inst), {}, "Register");
    expect([fast.status, generic.status]).toEqual([200, 200]);
    expect(comparable(fast.text)).toEqual(comparable(generic.text));
    expect(JSON.parse(fast.text).instance).toMatchObject({ instanceId: "r1", metadata: { a: "b" } });
    const gone = await both(JSON.stringify({ key: { service: "fd", instanceId: "r1" } }), {}, "Deregister");
    expect([gone.fast.status, gone.generic.status]).toEqual([200, 200]);
    expect(comparable(gone.fast.text)).toEqual(comparable(gone.generic.text));
    const again = await both(JSON.stringify({ key: { service: "fd", instanceId: "r1" } }), {}, "Deregister");
    expect([again.fast.status, again.generic.status]).toEqual([404, 404]);
    const proto = await both(Buffer.from(toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "fd", includeAll: true }))), {}, "Discover", "application/proto");
    expect([proto.fast.status, proto.generic.status]).toEqual([200, 200]);
    expect(proto.fast.contentType).toBe("application/proto");
  });

  it("answers malformed JSON and oversized bodies with the same codes as connect-es", async () => {
    for (const body of ["{not json", JSON.stringify({ service: "fd", hashKey: "x".repeat(4000) })]) {
      const { fast, generic } = await both(body);
      expect(fast.status).toBe(generic.status);
      expect(JSON.parse(fast.text).code).toBe(JSON.parse(generic.text).code);
    }
    const malformed = await both("{not json");
    expect(malformed.fast.status).toBe(400);
    const big = await both(JSON.stringify({ service: "fd", hashKey: "x".repeat(4000) }));
    expect(JSON.parse(big.fast.text)).toMatchObject({ code: "resource_exhausted", message: expect.stringContaining("2048") });
  });

  it("takes a gzip-compressed JSON body", async () => {
    const res = await fetch(url(), {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: gzipSync(JSON.stringify({ service: "fd", strategy: "STRATEGY_CONSISTENT_HASH", hashKey: "user-1" })),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { instance: { service: string } }).instance.service).toBe("fd");
  });

  it("speaks protobuf (application/proto) too", async () => {
    const req = toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "fd", includeAll: true }));
    const res = await fetch(url(), { method: "POST", headers: { "content-type": "application/proto" }, body: req });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/proto");
    const answer = fromBinary(DiscoverResponseSchema, new Uint8Array(await res.arrayBuffer()));
    expect(answer.instances.map((i) => i.instanceId)).toEqual(["a", "b", "c"]);
    expect(answer.registryId).not.toBe("");
  });

  it("answers repeated identical requests from the current state (decoded requests are shared, answers are not)", async () => {
    const body = JSON.stringify({ service: "fd", filter: { zone: "z1" } });
    const ask = async () => {
      const res = await fetch(url(), { method: "POST", headers: { "content-type": "application/json" }, body });
      return { status: res.status, json: (await res.json()) as { instance?: { instanceId: string }; revision?: string; code?: string } };
    };
    // round robin over a and b: the same body gets both
    const picks = new Set<string>();
    for (let i = 0; i < 4; i++) picks.add((await ask()).json.instance!.instanceId);
    expect([...picks].sort()).toEqual(["a", "b"]);
    // a change is seen at once by the next identical request
    const before = await ask();
    expect((await postJson(server.url, "Register", { instance: { service: "fd", instanceId: "a", host: "10.3.0.1", port: 80, zone: "z1", status: "SERVING_STATUS_NOT_SERVING" } })).status).toBe(200);
    const after: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await ask();
      expect(BigInt(r.json.revision!)).toBeGreaterThan(BigInt(before.json.revision!));
      after.push(r.json.instance!.instanceId);
    }
    expect(after).toEqual(["b", "b", "b"]);
    expect((await postJson(server.url, "Deregister", { key: { service: "fd", instanceId: "b" } })).status).toBe(200);
    const none = await ask();
    expect(none.status).toBe(404);
    expect(none.json.code).toBe("not_found");
    // put the fixture back for the other cases
    for (const id of ["a", "b"]) {
      expect((await postJson(server.url, "Register", { instance: { service: "fd", instanceId: id, host: "10.3.0.1", port: 80, zone: "z1" } })).status).toBe(200);
    }
  });

  it("answers a body far over the limit (many chunks) with resource_exhausted, and keeps serving", async () => {
    const res = await fetch(url(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "fd", hashKey: "x".repeat(300_000) }),
    });
    expect(res.status).toBe(429);
    expect(await res.json()).toMatchObject({ code: "resource_exhausted", message: expect.stringContaining("MAXINE_MAX_MESSAGE_BYTES") });
    expect((await postJson(server.url, "Discover", { service: "fd" })).status).toBe(200);
  });

  it("answers a gRPC message far over the limit with RESOURCE_EXHAUSTED and keeps the HTTP/2 connection", async () => {
    const session = http2.connect(server.url);
    try {
      const call = (message: Uint8Array) =>
        new Promise<{ status: string | undefined; message: string | undefined }>((resolve, reject) => {
          const stream = session.request({ ":method": "POST", ":path": "/maxine.registry.v1.RegistryService/Discover", "content-type": "application/grpc", te: "trailers" });
          let headers: http2.IncomingHttpHeaders = {};
          stream.on("response", (h) => (headers = h));
          stream.on("trailers", (t) => (headers = { ...headers, ...t }));
          stream.on("data", () => {});
          stream.on("error", reject);
          stream.on("close", () => resolve({ status: headers["grpc-status"] as string | undefined, message: headers["grpc-message"] as string | undefined }));
          stream.end(grpcFrame(message));
        });
      const big = await call(toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "fd", hashKey: "x".repeat(300_000) })));
      expect(big.status).toBe("8");
      expect(decodeURIComponent(big.message!)).toContain("exceeds the limit of 2048 bytes");
      const ok = await call(toBinary(DiscoverRequestSchema, create(DiscoverRequestSchema, { service: "fd" })));
      expect(ok.status).toBe("0");
    } finally {
      await new Promise<void>((resolve) => session.close(() => resolve()));
    }
  });
});
