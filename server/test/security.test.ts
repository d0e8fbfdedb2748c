import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import type * as http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { BeatResult, HeartbeatRequestSchema, OperatorStatus, RegistryService, ServingStatus } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMaxine, type Maxine } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import type { Logger } from "../src/domain/logger.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.js";

// Authentication, authorization and instance ownership through the real
// server: every RPC x every kind of caller x gRPC, Connect JSON and
// gRPC-Web, over cleartext, TLS and mutual TLS, with the memory and the
// Redis stores; then the attacks of the
// security issue (hijack, foreign deregister, heartbeat steal), and a scan
// of every log line the suite produced for the secrets it used.

const dir = mkdtempSync(join(tmpdir(), "maxine-auth-"));
const sha = (t: string) => createHash("sha256").update(t).digest("hex");
const TOKENS = {
  alice: "tok-alice-5f1e2a9c7b",
  bob: "tok-bob-0c4d8e2f6a",
  reader: "tok-reader-9a8b7c6d",
  staging: "tok-staging-1a2b3c4d",
  admin: "tok-admin-7e6f5a4b",
} as const;
let jwtValid = "";
let jwtExpired = "";
const logs: string[] = [];

function writeFiles(jwks: object): Record<string, string> {
  const tokens = [
    `alice ${"sha256:" + sha(TOKENS.alice)} payments-writer`,
    `bob ${"sha256:" + sha(TOKENS.bob)} payments-writer`,
    `reader ${"sha256:" + sha(TOKENS.reader)} reader`,
    `staging ${"sha256:" + sha(TOKENS.staging)} staging-writer`,
    `root ${"sha256:" + sha(TOKENS.admin)} admin`,
  ].join("\n");
  const policy = `roles:
  payments-writer:
    - permissions: [register]
      namespaces: [prod]
      services: ["payments*"]
  staging-writer:
    - { permissions: [register], namespaces: [staging], services: ["*"] }
  reader:
    - { permissions: [read], namespaces: ["*"], services: ["*"] }
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
bindings:
  "spiffe://maxine.test/ns/prod/sa/payments": [payments-writer]
`;
  writeFileSync(join(dir, "tokens"), tokens + "\n");
  writeFileSync(join(dir, "policy.yaml"), policy);
  writeFileSync(join(dir, "jwks.json"), JSON.stringify(jwks));
  return {
    MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"),
    MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml"),
    MAXINE_AUTH_JWKS_FILE: join(dir, "jwks.json"),
    MAXINE_AUTH_JWT_ISSUER: "https://issuer.test",
    MAXINE_AUTH_JWT_AUDIENCE: "maxine",
    MAXINE_AUTH_METRICS: "on",
  };
}

const recorder: Logger = (() => {
  const at = (level: string) => (obj: object, msg?: string) => void logs.push(JSON.stringify({ level, ...obj, msg }));
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
})();

let redis: RedisProcess;
let certs: TestCerts;
let env: Record<string, string>;
const servers: Maxine[] = [];

beforeAll(async () => {
  const keys = await generateKeyPair("ES256", { extractable: true });
  env = writeFiles({ keys: [{ ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "ES256" }] });
  const sign = (exp: number) =>
    new SignJWT({ roles: ["payments-writer"] })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setSubject("jwt-carol")
      .setIssuer("https://issuer.test")
      .setAudience("maxine")
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(exp)
      .sign(keys.privateKey);
  jwtValid = await sign(Math.floor(Date.now() / 1000) + 3600);
  jwtExpired = await sign(Math.floor(Date.now() / 1000) - 3600);
  redis = await startRedis();
  certs = await makeTestCerts();
});

afterAll(async () => {
  for (const s of sessions.splice(0)) s.abort();
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await redis?.close();
  await certs?.remove();
  // No secret the suite used reaches a log line: tokens, JWTs, or their hashes' preimages.
  const all = logs.join("\n");
  for (const secret of [...Object.values(TOKENS), jwtValid, jwtExpired]) expect(all).not.toContain(secret);
  expect(logs.some((l) => l.includes('"audit"'))).toBe(true);
});

/**
 * Link is how callers reach the server: cleartext HTTP/2, TLS, or mutual TLS
 * (the server requires a client certificate; every caller presents the
 * test CA's "payments" certificate, whose SPIFFE id the policy binds to
 * payments-writer, so a caller with no token acts as that principal).
 */
type Link = "cleartext" | "TLS" | "mTLS";

async function start(store: "memory" | "redis", link: Link = "cleartext"): Promise<{ m: Maxine; url: string; tls?: http2.SecureClientSessionOptions }> {
  const tlsEnv: Record<string, string> =
    link === "cleartext" ? {} : { MAXINE_TLS_CERT: certs.path("server.pem"), MAXINE_TLS_KEY: certs.path("server-key.pem") };
  if (link === "mTLS") Object.assign(tlsEnv, { MAXINE_TLS_CA: certs.path("ca.pem"), MAXINE_TLS_CLIENT_AUTH: "require" });
  const config = loadConfig([], {
    MAXINE_HOST: "127.0.0.1",
    MAXINE_PORT: "0",
    MAXINE_SHUTDOWN_GRACE: "1s",
    ...env,
    ...tlsEnv,
    ...(store === "redis" ? { MAXINE_STORE: "redis", MAXINE_REDIS_URL: redis.url, MAXINE_REDIS_REGISTRY: `sec-${Date.now()}` } : {}),
  });
  const m = await startMaxine(config, { logger: recorder });
  servers.push(m);
  if (link === "cleartext") return { m, url: `http://127.0.0.1:${m.port}` };
  const tls: http2.SecureClientSessionOptions = { ca: await certs.pem("ca.pem") };
  if (link === "mTLS") Object.assign(tls, { cert: await certs.pem("client.pem"), key: await certs.pem("client-key.pem") });
  return { m, url: `https://127.0.0.1:${m.port}`, tls };
}

type Caller = "none" | "bad token" | "expired JWT" | "wrong namespace" | "read-only" | "owner" | "other registrant" | "admin" | "JWT owner";
const CALLERS: Caller[] = ["none", "bad token", "expired JWT", "wrong namespace", "read-only", "owner", "other registrant", "admin", "JWT owner"];
const tokenOf = (c: Caller): string | undefined =>
  ({
    none: undefined,
    "bad token": "tok-not-a-real-one",
    "expired JWT": jwtExpired,
    "wrong namespace": TOKENS.staging,
    "read-only": TOKENS.reader,
    owner: TOKENS.alice,
    "other registrant": TOKENS.bob,
    admin: TOKENS.admin,
    "JWT owner": jwtValid,
  })[c];

type Rpc = "Register" | "Deregister" | "Discover" | "ListServices" | "WatchServices" | "Heartbeat" | "SetOperatorStatus";
type Outcome = "ok" | "hidden" | Code;

/** expected is the outcome of each RPC on prod/payments/p-1 (owned by alice; jwt-carol owns c-1) for each caller. */
function expected(c: Caller, rpc: Rpc): Outcome {
  if (c === "none" || c === "bad token" || c === "expired JWT") return Code.Unauthenticated;
  // an operator's override needs admin: owning the instance is not enough
  if (rpc === "SetOperatorStatus") return c === "admin" ? "ok" : Code.PermissionDenied;
  const read = rpc === "Discover" || rpc === "ListServices" || rpc === "WatchServices";
  if (c === "wrong namespace") return rpc === "ListServices" ? "hidden" : Code.PermissionDenied;
  if (c === "read-only") return read ? "ok" : Code.PermissionDenied;
  if (c === "other registrant") return read ? "ok" : Code.PermissionDenied;
  return "ok";
}

type Protocol = "gRPC" | "Connect JSON" | "gRPC-Web";
const sessions: Http2SessionManager[] = [];
function transport(p: Protocol, url: string, token: string | undefined, tls?: http2.SecureClientSessionOptions): Transport {
  const interceptors: Interceptor[] = token === undefined ? [] : [(next) => (req) => (req.header.set("authorization", `Bearer ${token}`), next(req))];
  const sessionManager = new Http2SessionManager(url, undefined, tls);
  sessions.push(sessionManager);
  if (p === "gRPC") return createGrpcTransport({ baseUrl: url, interceptors, sessionManager });
  if (p === "gRPC-Web") return createGrpcWebTransport({ baseUrl: url, httpVersion: "2", interceptors, sessionManager });
  return createConnectTransport({ baseUrl: url, httpVersion: "2", useBinaryFormat: false, interceptors, sessionManager });
}

const inst = (id: string, host = "10.0.0.1") => ({ namespace: "prod", service: "payments", instanceId: id, host, port: 80 });
const key = (id: string) => ({ namespace: "prod", service: "payments", instanceId: id });

async function codeOf(p: Promise<unknown>): Promise<Outcome> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}

/** call runs rpc as client on p-1 (c-1 for the JWT principal, its own) and reports the outcome. */
async function call(client: Client<typeof RegistryService>, rpc: Rpc, id: string): Promise<Outcome> {
  switch (rpc) {
    case "Register":
      return codeOf(client.register({ instance: inst(id, "10.9.9.9") }));
    case "Deregister":
      return codeOf(client.deregister({ key: key(id) }));
    case "SetOperatorStatus": {
      // drain, then (when allowed) clear again, so the next cell finds the instance SERVING
      const outcome = await codeOf(client.setOperatorStatus({ key: key(id), status: OperatorStatus.DRAINING }));
      if (outcome === "ok") await client.setOperatorStatus({ key: key(id), status: OperatorStatus.UNSPECIFIED });
      return outcome;
    }
    case "Discover":
      return codeOf(client.discover({ namespace: "prod", service: "payments" }));
    case "ListServices": {
      try {
        const r = await client.listServices({ namespace: "prod" });
        return r.services.some((s) => s.service === "payments") ? "ok" : "hidden";
      } catch (err) {
        return ConnectError.from(err).code;
      }
    }
    case "WatchServices": {
      const abort = new AbortController();
      try {
        for await (const m of client.watchServices({ namespace: "prod", services: ["payments"] }, { signal: abort.signal })) {
          if (m.message.case === "snapshotEnd") break;
        }
        return "ok";
      } catch (err) {
        return ConnectError.from(err).code;
      } finally {
        abort.abort();
      }
    }
    case "Heartbeat": {
      try {
        const beats = (async function* () {
          yield create(HeartbeatRequestSchema, { sequence: 1n, beats: [{ key: key(id) }] });
        })();
        for await (const r of client.heartbeat(beats)) {
          const result = r.acks[0]?.result;
          return result === BeatResult.RENEWED ? "ok" : result === BeatResult.PERMISSION_DENIED ? Code.PermissionDenied : Code.Unknown;
        }
        return Code.Unknown;
      } catch (err) {
        return ConnectError.from(err).code;
      }
    }
  }
}

const RPCS: Rpc[] = ["Register", "Discover", "ListServices", "WatchServices", "Heartbeat", "SetOperatorStatus", "Deregister"];

const MATRIX: Array<["memory" | "redis", Link]> = [
  ["memory", "cleartext"],
  ["memory", "TLS"],
  ["memory", "mTLS"],
  ["redis", "cleartext"],
  ["redis", "TLS"],
  ["redis", "mTLS"],
];

describe.each(MATRIX)("authorization matrix (%s store, %s)", (store, link) => {
  let url = "";
  let tls: http2.SecureClientSessionOptions | undefined;
  beforeAll(async () => {
    ({ url, tls } = await start(store, link));
  });

  it.each(["gRPC", "Connect JSON", "gRPC-Web"] as const)("every RPC x every caller over %s", async (p) => {
    const alice = createClient(RegistryService, transport(p, url, TOKENS.alice, tls));
    const carol = createClient(RegistryService, transport(p, url, jwtValid, tls));
    const got: string[] = [];
    const want: string[] = [];
    for (const c of CALLERS) {
      const client = createClient(RegistryService, transport(p, url, tokenOf(c), tls));
      for (const rpc of RPCS) {
        // gRPC-Web carries no client stream: Heartbeat is checked over the other two.
        if (rpc === "Heartbeat" && p === "gRPC-Web") continue;
        // Each cell starts from p-1 owned by alice and c-1 owned by jwt-carol.
        await alice.register({ instance: inst("p-1") });
        await carol.register({ instance: inst("c-1") });
        const id = c === "JWT owner" ? "c-1" : "p-1";
        const outcome = await call(client, rpc, id);
        got.push(`${c} ${rpc}: ${outcome}`);
        // over mTLS a caller with no token is the certificate's principal, a registrant that does not own p-1
        want.push(`${c} ${rpc}: ${expected(link === "mTLS" && c === "none" ? "other registrant" : c, rpc)}`);
      }
    }
    expect(got).toEqual(want);
  });
});

describe("the attacks of the security issue, refused", () => {
  let url = "";
  let m: Maxine;
  beforeAll(async () => {
    ({ m, url } = await start("memory"));
  });

  it("a hijacking Register, a foreign Deregister and a heartbeat steal leave the owner's instance as it was", async () => {
    const alice = createClient(RegistryService, transport("gRPC", url, TOKENS.alice));
    const bob = createClient(RegistryService, transport("gRPC", url, TOKENS.bob));
    await alice.register({ instance: inst("payments-1") });
    const hijack = await bob.register({ instance: inst("payments-1", "6.6.6.6") }).catch((e: unknown) => ConnectError.from(e));
    expect(hijack).toMatchObject({ code: Code.PermissionDenied, rawMessage: expect.stringContaining('belongs to principal "alice"') });
    expect(await codeOf(bob.deregister({ key: key("payments-1") }))).toBe(Code.PermissionDenied);
    expect(await call(bob, "Heartbeat", "payments-1")).toBe(Code.PermissionDenied);
    const d = await alice.discover({ namespace: "prod", service: "payments", includeAll: true });
    expect(d.instances.map((i) => [i.instanceId, i.host, i.owner])).toEqual([["payments-1", "10.0.0.1", "alice"]]);
    const audit = logs.filter((l) => l.includes('"audit"') && l.includes('"principal":"bob"'));
    expect(audit.map((l) => JSON.parse(l).audit)).toEqual(expect.arrayContaining(["Register", "Deregister", "Heartbeat"]));
  });

  it("an owner cannot drain its own instance (SetOperatorStatus needs admin); an admin's drain outlives the owner's re-registration and is audited", async () => {
    const alice = createClient(RegistryService, transport("gRPC", url, TOKENS.alice));
    const root = createClient(RegistryService, transport("Connect JSON", url, TOKENS.admin));
    await alice.register({ instance: inst("payments-op") });
    const refused = await alice.setOperatorStatus({ key: key("payments-op"), status: OperatorStatus.DRAINING }).catch((e: unknown) => ConnectError.from(e));
    expect(refused).toMatchObject({ code: Code.PermissionDenied, rawMessage: 'permission denied: principal "alice" lacks the admin permission on prod/payments' });
    const r = await root.setOperatorStatus({ key: key("payments-op"), status: OperatorStatus.DRAINING });
    expect(r.instance).toMatchObject({ owner: "alice", status: ServingStatus.DRAINING, operatorStatus: OperatorStatus.DRAINING });
    // the owner registers again (a restart with the same id): the override stays
    const again = await alice.register({ instance: { ...inst("payments-op"), status: ServingStatus.SERVING } });
    expect(again.instance).toMatchObject({ status: ServingStatus.DRAINING, operatorStatus: OperatorStatus.DRAINING });
    const bad = await root.setOperatorStatus({ key: key("payments-op"), status: 7 as OperatorStatus }).catch((e: unknown) => ConnectError.from(e));
    expect(bad).toMatchObject({ code: Code.InvalidArgument, rawMessage: "status: unknown value 7" });
    await root.setOperatorStatus({ key: key("payments-op"), status: OperatorStatus.UNSPECIFIED });
    const d = await alice.discover({ namespace: "prod", service: "payments", includeAll: true });
    expect(d.instances.find((i) => i.instanceId === "payments-op")).toMatchObject({ status: ServingStatus.SERVING, operatorStatus: OperatorStatus.UNSPECIFIED });
    const audit = logs.filter((l) => l.includes('"audit":"SetOperatorStatus')).map((l) => JSON.parse(l));
    expect(audit.map((a) => [a.audit, a.principal, a.result])).toEqual(
      expect.arrayContaining([
        ["SetOperatorStatus DRAINING", "alice", "PERMISSION_DENIED"],
        ["SetOperatorStatus DRAINING", "root", "ok"],
        ["SetOperatorStatus NONE", "root", "ok"],
      ]),
    );
    await alice.deregister({ key: key("payments-op") });
  });

  it("says which credential failed, never echoing it", async () => {
    const expired = await createClient(RegistryService, transport("Connect JSON", url, jwtExpired))
      .discover({ namespace: "prod", service: "payments" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(expired).toMatchObject({ code: Code.Unauthenticated, rawMessage: expect.stringContaining("JWT expired") });
    const none = await createClient(RegistryService, transport("gRPC", url, undefined))
      .discover({ namespace: "prod", service: "payments" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(none).toMatchObject({ code: Code.Unauthenticated, rawMessage: expect.stringContaining("no credentials") });
    const bad = await createClient(RegistryService, transport("gRPC-Web", url, "tok-not-a-real-one"))
      .discover({ namespace: "prod", service: "payments" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(bad).toMatchObject({ code: Code.Unauthenticated });
    expect(String(bad)).not.toContain("tok-not-a-real-one");
  });

  it("puts /metrics behind a token (MAXINE_AUTH_METRICS) and keeps /healthz open and free of registry contents", async () => {
    expect((await fetch(`${url}/metrics`)).status).toBe(401);
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${TOKENS.reader}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("maxine_rpc_requests_total");
    const health = await (await fetch(`${url}/healthz`)).text();
    expect(health).not.toContain("payments");
  });

  it("a policy reload (SIGHUP's work) applies to new calls and ends open watches", async () => {
    const reader = createClient(RegistryService, transport("gRPC", url, TOKENS.reader));
    const abort = new AbortController();
    const stream = reader.watchServices({ namespace: "prod", services: ["payments"] }, { signal: abort.signal });
    const it = stream[Symbol.asyncIterator]();
    while ((await it.next()).value?.message.case !== "snapshotEnd");
    writeFileSync(join(dir, "policy.yaml"), "roles:\n  admin:\n    - { permissions: [admin], namespaces: [\"*\"], services: [\"*\"] }\n");
    try {
      expect(await m.reloadAuth()).toBe(true);
      const ended = await it.next().then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(ended).toMatchObject({ code: Code.Unavailable, rawMessage: expect.stringContaining("access policy changed") });
      expect(await codeOf(reader.discover({ namespace: "prod", service: "payments" }))).toBe(Code.PermissionDenied);
    } finally {
      abort.abort();
      writeFiles(JSON.parse(readFileSync(join(dir, "jwks.json"), "utf8")));
      await m.reloadAuth();
    }
  });
});

describe.each(["memory", "redis"] as const)("a namespace-wide watch shows only the services the principal may read (%s store)", (store) => {
  let url = "";
  beforeAll(async () => {
    url = (await start(store)).url;
  });

  type Seen = { snapshot: string[]; events: string[]; end: bigint };
  /** watchUntil reads a namespace-wide watch of prod: its snapshot, then its events up to the instance id `last` (a marker). */
  async function watchUntil(client: Client<typeof RegistryService>, last: string, resumeRevision = 0n, opened?: () => Promise<void>): Promise<Seen> {
    const abort = new AbortController();
    const seen: Seen = { snapshot: [], events: [], end: 0n };
    try {
      for await (const m of client.watchServices({ namespace: "prod", resumeRevision }, { signal: abort.signal })) {
        const c = m.message;
        if (c.case === "snapshot") seen.snapshot.push(...c.value.instances.map((i) => `${i.service}/${i.instanceId}`));
        if (c.case === "snapshotEnd" || (c.case === "progress" && seen.end === 0n)) {
          seen.end = c.value.revision;
          await opened?.();
        }
        if (c.case === "event") {
          const i = c.value.instance!;
          seen.events.push(`${c.value.type === 1 ? "ADDED" : c.value.type === 2 ? "UPDATED" : "REMOVED"} ${i.service}/${i.instanceId}`);
          if (i.instanceId === last) break;
        }
      }
    } finally {
      abort.abort();
    }
    return seen;
  }

  it.each(["gRPC", "Connect JSON"] as const)("over %s: snapshot, later events and a resume hold only readable services; none readable is refused", async (p) => {
    const tag = p === "gRPC" ? "g" : "c";
    const root = createClient(RegistryService, transport(p, url, TOKENS.admin));
    const alice = createClient(RegistryService, transport(p, url, TOKENS.alice));
    const at = (service: string, id: string) => ({ namespace: "prod", service, instanceId: `${tag}-${id}`, host: "10.0.0.7", port: 80 });
    await root.register({ instance: at("payments", "p1") });
    await root.register({ instance: at("orders", "o1") });
    // alice (register, so read, on prod/payments*) watches all of prod; meanwhile orders and a new payments-eu service change
    const live = await watchUntil(alice, `${tag}-end`, 0n, async () => {
      await root.register({ instance: at("orders", "o2") });
      await root.register({ instance: at("payments-eu", "e1") });
      await root.register({ instance: { ...at("orders", "o1"), port: 81 } });
      await root.register({ instance: { ...at("payments", "p1"), port: 81 } });
      await root.deregister({ key: { namespace: "prod", service: "orders", instanceId: `${tag}-o2` } });
      await root.register({ instance: at("payments", "end") });
    });
    expect(live.snapshot).toContain(`payments/${tag}-p1`);
    expect(live.snapshot.every((s) => s.startsWith("payments"))).toBe(true);
    expect(live.events).toEqual([`ADDED payments-eu/${tag}-e1`, `UPDATED payments/${tag}-p1`, `ADDED payments/${tag}-end`]);

    // a resume replays the same changes, filtered alike
    const resumed = await watchUntil(alice, `${tag}-end`, live.end);
    expect(resumed.snapshot).toEqual([]);
    expect(resumed.events).toEqual(live.events);

    // a principal allowed every service sees them all
    const reader = createClient(RegistryService, transport(p, url, TOKENS.reader));
    const all = await watchUntil(reader, `${tag}-end`, live.end);
    expect(all.events).toEqual(expect.arrayContaining([`ADDED orders/${tag}-o2`, `UPDATED orders/${tag}-o1`, `REMOVED orders/${tag}-o2`]));

    // no readable service in the namespace: refused, naming the rule
    const staging = createClient(RegistryService, transport(p, url, TOKENS.staging));
    const refused = await watchUntil(staging, "never").catch((e: unknown) => ConnectError.from(e));
    expect(refused).toMatchObject({
      code: Code.PermissionDenied,
      rawMessage: expect.stringContaining('principal "staging" lacks the read permission on any service of namespace prod'),
    });
    // naming a service it may not read is still refused
    expect(await codeOf(alice.watchServices({ namespace: "prod", services: ["orders"] })[Symbol.asyncIterator]().next())).toBe(Code.PermissionDenied);
  });
});
