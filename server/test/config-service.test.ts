import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ConfigService } from "@maxine/sdk/gen/maxine/config/v1/config_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import type { Interceptor, Protocol } from "../src/rpc/context.js";
import { toConnectError } from "../src/rpc/errors.js";
import { envelope, JsonStream, startInProcess } from "./support/in-process.js";
import { Collector, unary } from "./support/grpc-client.js";

// ConfigService on a real server over real HTTP/2 and HTTP/1.1: an
// independent gRPC client (@grpc/grpc-js loading config.proto, no
// generated code), plain fetch with Connect JSON, and connect-es on every
// protocol through the one interceptor chain.

const PROTO_ROOT = fileURLToPath(new URL("../../proto", import.meta.url));
const SERVICE = "maxine.config.v1.ConfigService";
const dirs: string[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "maxine-config-svc-"));
  dirs.push(d);
  return d;
}

/** configGrpcClient is ConfigService over @grpc/grpc-js with the .proto loaded at run time. */
function configGrpcClient(port: number): grpc.Client & Record<string, any> {
  const def = protoLoader.loadSync("maxine/config/v1/config.proto", { includeDirs: [PROTO_ROOT], longs: String, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const Ctor = pkg.maxine.config.v1.ConfigService as typeof grpc.Client;
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
}

async function postJson(url: string, method: string, body: unknown, token?: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/${SERVICE}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

async function watchJson(url: string, body: unknown, signal: AbortSignal): Promise<JsonStream> {
  const res = await fetch(`${url}/${SERVICE}/Watch`, { method: "POST", headers: { "content-type": "application/connect+json" }, body: envelope(body), signal });
  expect(res.status).toBe(200);
  return new JsonStream(res);
}

const b64 = (s: string) => Buffer.from(s).toString("base64");

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("ConfigService over gRPC (@grpc/grpc-js) and Connect JSON (fetch)", () => {
  let server: Maxine & { url: string };
  let client: grpc.Client & Record<string, any>;
  beforeAll(async () => {
    server = await startInProcess({
      MAXINE_DATA_DIR: tempDir(),
      MAXINE_CONFIG_MAX_VALUE_BYTES: "64",
      MAXINE_CONFIG_MAX_KEYS_PER_SERVICE: "3",
      MAXINE_CONFIG_HISTORY_DEPTH: "3",
      MAXINE_WATCH_PROGRESS_INTERVAL: "1h",
    });
    client = configGrpcClient(server.port);
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  it("Put, Get, List, History, Rollback and Delete", async () => {
    const put1 = await unary<any>(client, "Put", { service: "checkout", key: "app.json", value: Buffer.from('{"a":1}'), contentType: "application/json", expectedVersion: 0 });
    expect(put1.entry).toMatchObject({ namespace: "default", service: "checkout", key: "app.json", version: "1", principal: "anonymous", deleted: false, contentType: "application/json" });
    const put2 = await unary<any>(client, "Put", { service: "checkout", key: "app.json", value: Buffer.from('{"a":2}'), contentType: "application/json", expectedVersion: 1 });
    expect(put2.entry.version).toBe("2");
    expect(Number(put2.entry.revision)).toBe(Number(put1.entry.revision) + 1);
    const got = await unary<any>(client, "Get", { service: "checkout", key: "app.json" });
    expect(Buffer.from(got.entry.value).toString()).toBe('{"a":2}');
    const v1 = await unary<any>(client, "Get", { service: "checkout", key: "app.json", version: 1 });
    expect(Buffer.from(v1.entry.value).toString()).toBe('{"a":1}');
    await unary(client, "Put", { service: "checkout", key: "flags", value: Buffer.from("on") });
    const list = await unary<any>(client, "List", { service: "checkout" });
    expect(list.entries.map((e: any) => [e.key, e.version, e.value.length])).toEqual([["app.json", "2", 0], ["flags", "1", 0]]);
    const listed = await unary<any>(client, "List", { service: "checkout", includeValues: true });
    expect(Buffer.from(listed.entries[1].value).toString()).toBe("on");
    const rolled = await unary<any>(client, "Rollback", { service: "checkout", key: "app.json", toVersion: 1, expectedVersion: 2 });
    expect(rolled.entry.version).toBe("3");
    expect(Buffer.from(rolled.entry.value).toString()).toBe('{"a":1}');
    const history = await unary<any>(client, "History", { service: "checkout", key: "app.json" });
    expect(history.entries.map((e: any) => e.version)).toEqual(["3", "2", "1"]);
    expect(history.entries[0].updatedAt.seconds).not.toBe("0");
    const deleted = await unary<any>(client, "Delete", { service: "checkout", key: "flags", expectedVersion: 1 });
    expect(deleted.entry).toMatchObject({ version: "2", deleted: true });
    const gone = await unary(client, "Get", { service: "checkout", key: "flags" }).catch((e: grpc.ServiceError) => e);
    expect(gone).toMatchObject({ code: grpc.status.NOT_FOUND, details: "key: default/checkout/flags does not exist (deleted at version 2)" });
  });

  it("compare-and-set over Connect JSON: a stale expected version is failed_precondition and writes nothing", async () => {
    const first = await postJson(server.url, "Put", { service: "cas", key: "k", value: b64("v1"), expectedVersion: "0" });
    expect(first.status).toBe(200);
    const stale = await postJson(server.url, "Put", { service: "cas", key: "k", value: b64("v2"), expectedVersion: "0" });
    expect(stale).toMatchObject({ status: 400, json: { code: "failed_precondition", message: "expected_version: key default/cas/k is at version 1, expected 0 (must not exist); read it again and retry" } });
    const got = await postJson(server.url, "Get", { service: "cas", key: "k" });
    expect(got.json.entry).toMatchObject({ version: "1", value: b64("v1") });
  });

  it.each([
    [{ service: "s", key: "" }, "invalid_argument", "key: is required"],
    [{ service: "s", key: "bad key" }, "invalid_argument", 'key: must be 1..256 characters of [A-Za-z0-9._/-] starting with a letter or digit, got "bad key"'],
    [{ service: "s", key: "/abs" }, "invalid_argument", "key: must be 1..256 characters"],
    [{ service: "", key: "k" }, "invalid_argument", "service: is required"],
    [{ service: "s p", key: "k" }, "invalid_argument", "service: must be"],
    [{ namespace: "n s", service: "s", key: "k" }, "invalid_argument", "namespace: must be"],
    [{ service: "s", key: "k", value: b64("x".repeat(65)) }, "invalid_argument", "value: must be at most 64 bytes (MAXINE_CONFIG_MAX_VALUE_BYTES), got 65"],
    [{ service: "s", key: "k", contentType: "text/plain\n" }, "invalid_argument", "content_type: must be 1..128 printable ASCII characters"],
  ])("Put %j is refused: %s %s", async (body, code, message) => {
    const r = await postJson(server.url, "Put", body);
    expect(r.status).toBe(400);
    expect(r.json.code).toBe(code);
    expect(r.json.message).toContain(message);
  });

  it("limits name their settings: keys per service, history depth on Get of a dropped version, Rollback without to_version", async () => {
    for (const k of ["a", "b", "c"]) expect((await postJson(server.url, "Put", { service: "full", key: k, value: b64(k) })).status).toBe(200);
    const full = await postJson(server.url, "Put", { service: "full", key: "d", value: b64("d") });
    expect(full.json).toMatchObject({ code: "resource_exhausted", message: "key: service default/full holds the maximum of 3 keys (MAXINE_CONFIG_MAX_KEYS_PER_SERVICE)" });
    for (let i = 0; i < 3; i++) await postJson(server.url, "Put", { service: "full", key: "a", value: b64(`a${i}`) });
    const dropped = await postJson(server.url, "Get", { service: "full", key: "a", version: "1" });
    expect(dropped.json).toMatchObject({ code: "not_found", message: "version: version 1 of default/full/a is not kept (kept: 2..4; MAXINE_CONFIG_HISTORY_DEPTH)" });
    const noTo = await postJson(server.url, "Rollback", { service: "full", key: "a" });
    expect(noTo.json).toMatchObject({ code: "invalid_argument", message: "to_version: is required (the version to roll back to)" });
    const hist = await postJson(server.url, "History", { service: "full", key: "a", limit: 2 });
    expect(hist.json.entries.map((e: any) => e.version)).toEqual(["4", "3"]);
  });

  it("Watch (gRPC): a snapshot, then each change in revision order; a resume replays exactly the changes after it", async () => {
    await unary(client, "Put", { service: "w1", key: "x", value: Buffer.from("1") });
    const c = new Collector(client.Watch({ services: ["w1"] }));
    const [chunk, end] = await c.waitFor((m) => m.some((x: any) => x.snapshotEnd));
    expect(chunk.snapshot.entries.map((e: any) => [e.key, e.version])).toEqual([["x", "1"]]);
    const at = end.snapshotEnd.revision;
    await unary(client, "Put", { service: "w1", key: "x", value: Buffer.from("2") });
    await unary(client, "Put", { service: "other", key: "x", value: Buffer.from("not watched") });
    await unary(client, "Delete", { service: "w1", key: "x" });
    await c.waitFor((m) => m.filter((x: any) => x.event).length === 2);
    const events = c.messages.filter((x: any) => x.event).map((x: any) => [x.event.type, x.event.entry.key, x.event.entry.version, Buffer.from(x.event.entry.value).toString()]);
    expect(events).toEqual([
      ["EVENT_TYPE_PUT", "x", "2", "2"],
      ["EVENT_TYPE_DELETED", "x", "3", ""],
    ]);
    c.call.cancel();
    // resume from the snapshot's revision: the same two changes, then a bookmark at the head, and no snapshot
    const r = new Collector(client.Watch({ services: ["w1"], resumeRevision: at, registryId: end.snapshotEnd.registryId }));
    await r.waitFor((m) => m.some((x: any) => x.progress));
    expect(r.messages.some((x: any) => x.snapshot || x.snapshotEnd)).toBe(false);
    expect(r.messages.filter((x: any) => x.event).map((x: any) => x.event.entry.version)).toEqual(["2", "3"]);
    r.call.cancel();
    // another registry's id: a fresh snapshot flagged reset
    const other = new Collector(client.Watch({ services: ["w1"], resumeRevision: at, registryId: "not-this-one" }));
    const [first] = await other.waitFor((m) => m.length >= 1);
    expect(first.snapshotEnd).toMatchObject({ reset: true });
    other.call.cancel();
    await Promise.all([c.closed(), r.closed(), other.closed()].map((p) => p.catch(() => undefined)));
  });

  it("Watch (Connect JSON over fetch): namespace-wide snapshot, then events", async () => {
    await postJson(server.url, "Put", { namespace: "nsw", service: "a", key: "k", value: b64("1") });
    await postJson(server.url, "Put", { namespace: "nsw", service: "b", key: "k", value: b64("1") });
    const ac = new AbortController();
    const s = await watchJson(server.url, { namespace: "nsw" }, ac.signal);
    const snap = await s.next();
    expect(snap.snapshot.entries.map((e: any) => `${e.service}/${e.key}`)).toEqual(["a/k", "b/k"]);
    expect((await s.next()).snapshotEnd).toBeDefined();
    await postJson(server.url, "Put", { namespace: "nsw", service: "c", key: "k", value: b64("new") });
    const ev = await s.next();
    expect(ev.event).toMatchObject({ type: "EVENT_TYPE_PUT", entry: { service: "c", key: "k", value: b64("new"), version: "1" } });
    ac.abort();
    await s.cancel();
  });
});

describe("ConfigService passes the one interceptor chain on every protocol", () => {
  const seen: Array<{ method: string; protocol: Protocol; code: number }> = [];
  const recorder: Interceptor = {
    onEnd(ctx, err) {
      if (ctx.method.service === SERVICE) seen.push({ method: ctx.method.name, protocol: ctx.protocol, code: err === undefined ? 0 : toConnectError(err).code });
      return err;
    },
  };
  let server: Maxine & { url: string };
  const sessions: Http2SessionManager[] = [];
  beforeAll(async () => {
    server = await startInProcess({ MAXINE_DATA_DIR: "off" }, { interceptors: [recorder] });
  });
  afterAll(async () => {
    for (const s of sessions) s.abort();
    await server.close();
  });
  const h2 = (): Http2SessionManager => {
    const s = new Http2SessionManager(server.url);
    sessions.push(s);
    return s;
  };
  const transports: Array<[string, Protocol, () => Transport]> = [
    ["gRPC, HTTP/2", "grpc", () => createGrpcTransport({ baseUrl: server.url, sessionManager: h2() })],
    ["gRPC-Web, HTTP/1.1", "grpc-web", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    ["Connect JSON, HTTP/1.1", "connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
    ["Connect binary, HTTP/2", "connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true, sessionManager: h2() })],
  ];
  it.each(transports)("%s", async (what, protocol, transport) => {
    seen.length = 0;
    const c = createClient(ConfigService, transport());
    const service = what.replace(/\W+/g, "-");
    await c.put({ service, key: "k", value: new TextEncoder().encode("v") });
    await expect(c.put({ service, key: "k", value: new Uint8Array(), expectedVersion: 0n })).rejects.toMatchObject({ code: Code.FailedPrecondition });
    const ac = new AbortController();
    const stream = c.watch({ services: [service] }, { signal: ac.signal });
    for await (const m of stream) {
      if (m.message.case === "snapshotEnd") break;
    }
    ac.abort();
    await expect.poll(() => seen.filter((s) => s.method === "Watch").length).toBe(1);
    expect(seen.map((s) => [s.method, s.protocol, s.code])).toEqual([
      ["Put", protocol, 0],
      ["Put", protocol, Code.FailedPrecondition],
      ["Watch", protocol, Code.Canceled],
    ]);
  });
});

describe("one server per data directory", () => {
  it("a second server on a data directory another holds answers config calls UNAVAILABLE naming MAXINE_DATA_DIR, and serves the registry", async () => {
    const dir = tempDir();
    const a = await startInProcess({ MAXINE_DATA_DIR: dir });
    const b = await startInProcess({ MAXINE_DATA_DIR: dir });
    try {
      expect((await postJson(a.url, "Put", { service: "s", key: "k", value: b64("a") })).status).toBe(200);
      const refused = await postJson(b.url, "Get", { service: "s", key: "k" });
      expect(refused.json.code).toBe("unavailable");
      expect(refused.json.message).toMatch(/^configuration store: .*config is in use by another process \(one Maxine server per data directory\); set MAXINE_DATA_DIR$/);
      const registry = await fetch(`${b.url}/maxine.registry.v1.RegistryService/ListServices`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(registry.status).toBe(200);
      // once the holder is gone, the next call opens it
      await a.close();
      expect((await postJson(b.url, "Get", { service: "s", key: "k" })).json.entry).toMatchObject({ value: b64("a") });
    } finally {
      await a.close();
      await b.close();
    }
  });
});
