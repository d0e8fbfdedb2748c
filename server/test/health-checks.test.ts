import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { Collector, details, grpcClient, unary } from "./support/grpc-client.js";
import { postJson, startInProcess } from "./support/in-process.js";

// Active health checks, end to end: a real server on port 0 over real
// HTTP/2 with an independent client (@grpc/grpc-js loading the .proto at
// run time), probing real targets on loopback: a node:http server whose
// /healthz flips between 200 and 503, a TCP listener that goes away, a
// grpc-js server whose grpc.health.v1 status flips, a server that never
// answers (timeouts), 1,000 slow targets (the concurrency limit), and
// addresses the allow-list refuses. Discover is also read with plain fetch
// and Connect JSON. Every target listens on 127.0.0.1 only.

const PROTO_ROOT = fileURLToPath(new URL("../../proto", import.meta.url));
const FAST = { MAXINE_CHECK_INTERVAL_MIN: "100ms" };
const ms = (n: number) => ({ seconds: Math.floor(n / 1000), nanos: (n % 1000) * 1_000_000 });

/** until polls pred (bounded), returning its first truthy value. */
async function until<T>(pred: () => T | Promise<T>, timeoutMs = 10_000, what = "condition"): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function listen<S extends HttpServer | TcpServer>(server: S): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
  });
}

function closeServer(server: HttpServer | TcpServer): Promise<void> {
  return new Promise((resolve) => {
    (server as HttpServer).closeAllConnections?.();
    server.close(() => resolve());
  });
}

/** FlipTarget is a node:http server whose /healthz answers `status` and counts hits. */
class FlipTarget {
  status = 200;
  hits = 0;
  readonly server = createHttpServer((req, res) => {
    if (req.url !== "/healthz") {
      res.writeHead(404).end();
      return;
    }
    this.hits++;
    res.writeHead(this.status, { "content-type": "text/plain" }).end(this.status === 200 ? "ok" : "down");
  });
  port = 0;
  async start(): Promise<this> {
    this.port = await listen(this.server);
    return this;
  }
  close(): Promise<void> {
    return closeServer(this.server);
  }
}

/** WatchLog collects a grpc-js WatchServices stream's events. */
function watch(client: grpc.Client & Record<string, any>, service: string): Collector<any, grpc.ClientReadableStream<any>> {
  return new Collector(client.WatchServices({ services: [service] }));
}

const events = (w: Collector<any, any>) => w.messages.filter((m) => m.event).map((m) => m.event);

const httpCheck = (port: number, over: object = {}) => ({
  http: { path: "/healthz" },
  port,
  interval: ms(200),
  timeout: ms(150),
  healthyThreshold: 1,
  unhealthyThreshold: 2,
  ...over,
});

describe("active health checks (in-memory store)", () => {
  let server: Maxine & { url: string };
  let client: grpc.Client & Record<string, any>;
  const cleanups: (() => unknown)[] = [];
  beforeAll(async () => {
    server = await startInProcess(FAST);
    client = grpcClient(server.port);
  });
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  it("an HTTP check turns /healthz flips into status changes within interval x threshold, each an UPDATED event that says why", async () => {
    const target = await new FlipTarget().start();
    cleanups.push(() => target.close());
    const w = watch(client, "web");
    cleanups.push(() => w.call.cancel());
    await w.waitFor((m) => m.some((x) => x.snapshotEnd));
    const reg = await unary<any>(client, "Register", {
      instance: { service: "web", instanceId: "web-1", host: "127.0.0.1", port: target.port, healthCheck: httpCheck(0) },
      leaseTtl: { seconds: 1 }, // ignored: an instance with a check has no lease
    });
    // defaults applied and echoed; PENDING until the first pass, and not chosen meanwhile
    expect(reg.instance.healthCheck).toMatchObject({ http: { path: "/healthz", method: "GET", expectedStatusMin: 200, expectedStatusMax: 399 }, port: 0 });
    expect(reg.instance.checkResult.status).toBe("CHECK_STATUS_PENDING");
    expect(reg.instance.status).toBe("SERVING_STATUS_NOT_SERVING");
    expect(reg.leaseTtl).toBeNull();
    expect(reg.leaseExpiresAt).toBeNull();

    // first pass: SERVING (the first probe comes at a random point of the first interval)
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_PASSING"), 3_000);
    const passing = events(w).find((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_PASSING");
    expect(passing).toMatchObject({ type: "EVENT_TYPE_UPDATED", instance: { status: "SERVING_STATUS_SERVING", checkResult: { message: "HTTP 200 from /healthz" } } });
    const chosen = await unary<any>(client, "Discover", { service: "web" });
    expect(chosen.instance.instanceId).toBe("web-1");

    // it outlives its (ignored) 1 s lease: no lease at all
    await new Promise((r) => setTimeout(r, 1_300));
    expect((await unary<any>(client, "Discover", { service: "web" })).instance.instanceId).toBe("web-1");
    expect(events(w).filter((e: any) => e.type === "EVENT_TYPE_REMOVED")).toEqual([]);

    // 503: FAILING after 2 failures, within interval x threshold (+ one interval of phase and a margin for a loaded machine)
    const flipped = Date.now();
    target.status = 503;
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_FAILING"), 3_000);
    const took = Date.now() - flipped;
    expect(took).toBeLessThan(200 * 2 + 200 + 600);
    const failing = events(w).find((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_FAILING");
    expect(failing.instance).toMatchObject({ status: "SERVING_STATUS_NOT_SERVING", checkResult: { message: "HTTP 503 from /healthz" } });
    const none = await unary(client, "Discover", { service: "web" }).catch((e) => e);
    expect(none).toMatchObject({ code: grpc.status.NOT_FOUND });

    // Discover include_all in Connect JSON (plain fetch) shows the reason too
    const listed = await postJson(server.url, "Discover", { service: "web", includeAll: true });
    expect(listed.status).toBe(200);
    expect(listed.json.instances[0]).toMatchObject({ instanceId: "web-1", status: "SERVING_STATUS_NOT_SERVING", checkResult: { status: "CHECK_STATUS_FAILING", message: "HTTP 503 from /healthz" } });

    // recovery
    target.status = 200;
    await w.waitFor((m) => events({ messages: m } as never).filter((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_PASSING").length === 2, 3_000);
    expect((await unary<any>(client, "Discover", { service: "web" })).instance.checkResult).toMatchObject({ status: "CHECK_STATUS_PASSING", message: "HTTP 200 from /healthz" });
    // a steady check writes nothing: no event per probe
    const count = events(w).length;
    const hits = target.hits;
    await until(() => target.hits >= hits + 4, 3_000, "more probes");
    expect(events(w).length).toBe(count);
  });

  it("a status the instance reports and its check combine: the worse of the two", async () => {
    const target = await new FlipTarget().start();
    cleanups.push(() => target.close());
    await unary(client, "Register", { instance: { service: "combo", instanceId: "c-1", host: "127.0.0.1", port: target.port, status: "SERVING_STATUS_DRAINING", healthCheck: httpCheck(0) } });
    const listed = async () => (await unary<any>(client, "Discover", { service: "combo", includeAll: true })).instances[0];
    await until(async () => (await listed()).checkResult.status === "CHECK_STATUS_PASSING", 3_000, "passing");
    expect((await listed()).status).toBe("SERVING_STATUS_DRAINING"); // reported DRAINING, check passing
    target.status = 503;
    await until(async () => (await listed()).checkResult.status === "CHECK_STATUS_FAILING", 3_000, "failing");
    expect((await listed()).status).toBe("SERVING_STATUS_NOT_SERVING"); // check failing is worse
  });

  it("an instance with a session and a check: bound to its heartbeat stream (removed when it ends), status the worse of its beats and its check", async () => {
    const target = await new FlipTarget().start();
    cleanups.push(() => target.close());
    const w = watch(client, "session-svc");
    cleanups.push(() => w.call.cancel());
    await w.waitFor((m) => m.some((x) => x.snapshotEnd));
    const hb = new Collector(client.Heartbeat());
    cleanups.push(() => hb.call.cancel());
    const key = { service: "session-svc", instanceId: "s-1" };
    const instance = { ...key, host: "127.0.0.1", port: target.port, healthCheck: httpCheck(0) };
    hb.call.write({ sequence: 1, beats: [{ key, instance, leaseTtl: { seconds: 5 } }] });
    const [first] = (await hb.waitFor((m) => m.length === 1))[0].acks;
    expect(first.result).toBe("BEAT_RESULT_REGISTERED");
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_PASSING"), 3_000);
    // the beat says DRAINING, the check passes: DRAINING
    hb.call.write({ sequence: 2, beats: [{ key, status: "SERVING_STATUS_DRAINING" }] });
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.instance.status === "SERVING_STATUS_DRAINING"), 3_000);
    // the check fails: NOT_SERVING, whatever the beats say
    target.status = 503;
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_FAILING"), 3_000);
    expect(events(w).at(-1).instance.status).toBe("SERVING_STATUS_NOT_SERVING");
    // the session ends: removed after the grace, as any session's instance
    hb.call.end();
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.type === "EVENT_TYPE_REMOVED"), 4_000);
    expect(events(w).at(-1).removalReason).toBe("REMOVAL_REASON_STREAM_CLOSED");
  });

  it("a TCP check fails when the listener goes away, with the connect error, and deregister_after removes the instance", async () => {
    const sockets = new Set<Socket>();
    const tcp = createTcpServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    const port = await listen(tcp);
    const w = watch(client, "tcp-svc");
    cleanups.push(() => w.call.cancel());
    await w.waitFor((m) => m.some((x) => x.snapshotEnd));
    await unary(client, "Register", {
      instance: { service: "tcp-svc", instanceId: "t-1", host: "127.0.0.1", port, healthCheck: { tcp: {}, interval: ms(200), timeout: ms(150), unhealthyThreshold: 2, deregisterAfter: ms(1_000) } },
    });
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_PASSING"), 3_000);
    expect(events(w).at(-1).instance.checkResult.message).toBe(`TCP connect to port ${port}`);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => tcp.close(() => r()));
    const gone = Date.now();
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.instance.checkResult?.status === "CHECK_STATUS_FAILING"), 3_000);
    expect(events(w).at(-1).instance.checkResult.message).toBe("connect ECONNREFUSED");
    // removed once its probes have failed for deregister_after (1 s), not before
    await w.waitFor((m) => events({ messages: m } as never).some((e: any) => e.type === "EVENT_TYPE_REMOVED"), 4_000);
    const removed = events(w).find((e: any) => e.type === "EVENT_TYPE_REMOVED");
    expect(removed.removalReason).toBe("REMOVAL_REASON_CHECK_FAILED");
    expect(Date.now() - gone).toBeGreaterThanOrEqual(1_000);
    await expect(unary(client, "Discover", { service: "tcp-svc" })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("a gRPC check follows grpc.health.v1 as served by grpc-js, for the named service", async () => {
    const def = protoLoader.loadSync("grpc/health/v1/health.proto", { includeDirs: [PROTO_ROOT], enums: String, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as any;
    const statuses = new Map<string, string>([["payments", "SERVING"]]);
    const backend = new grpc.Server();
    backend.addService(pkg.grpc.health.v1.Health.service, {
      check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
        const s = statuses.get(call.request.service);
        if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: "unknown service" });
        else cb(null, { status: s });
      },
      watch(call: grpc.ServerWritableStream<unknown, unknown>) {
        call.end();
      },
      list(_call: unknown, cb: grpc.sendUnaryData<unknown>) {
        cb({ code: grpc.status.UNIMPLEMENTED });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      backend.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    cleanups.push(() => new Promise<void>((r) => backend.tryShutdown(() => r())));
    const check = (service: string) => ({ grpc: { service }, interval: ms(200), timeout: ms(150), unhealthyThreshold: 1 });
    await unary(client, "Register", { instance: { service: "grpc-svc", instanceId: "g-1", host: "127.0.0.1", port, healthCheck: check("payments") } });
    await unary(client, "Register", { instance: { service: "grpc-svc", instanceId: "g-2", host: "127.0.0.1", port, healthCheck: check("nope") } });
    const listed = async () => (await unary<any>(client, "Discover", { service: "grpc-svc", includeAll: true })).instances;
    await until(async () => (await listed())[0].checkResult.status === "CHECK_STATUS_PASSING", 3_000, "g-1 passing");
    expect((await listed())[0].checkResult.message).toBe("grpc.health.v1 SERVING");
    await until(async () => (await listed())[1].checkResult.message !== "", 3_000, "g-2 probed");
    expect((await listed())[1].checkResult).toMatchObject({ status: "CHECK_STATUS_FAILING", message: "grpc.health.v1 NOT_FOUND: unknown service" });
    statuses.set("payments", "NOT_SERVING");
    await until(async () => (await listed())[0].checkResult.status === "CHECK_STATUS_FAILING", 3_000, "g-1 failing");
    expect((await listed())[0]).toMatchObject({ status: "SERVING_STATUS_NOT_SERVING", checkResult: { message: "grpc.health.v1 NOT_SERVING" } });
    statuses.set("payments", "SERVING");
    await until(async () => (await listed())[0].checkResult.status === "CHECK_STATUS_PASSING", 3_000, "g-1 passing again");
  });

  it("a probe that does not answer fails at its timeout", async () => {
    const held: Socket[] = [];
    const silent = createTcpServer((s) => held.push(s)); // accepts, never answers HTTP
    const port = await listen(silent);
    cleanups.push(async () => {
      for (const s of held) s.destroy();
      await closeServer(silent);
    });
    await unary(client, "Register", {
      instance: { service: "slow", instanceId: "s-1", host: "127.0.0.1", port, healthCheck: httpCheck(0, { unhealthyThreshold: 1, timeout: ms(150) }) },
    });
    const listed = async () => (await unary<any>(client, "Discover", { service: "slow", includeAll: true })).instances[0];
    await until(async () => (await listed()).checkResult.status === "CHECK_STATUS_FAILING", 3_000, "timeout failure");
    expect((await listed()).checkResult.message).toBe("timeout after 0.15 s");
    // the probes' connections are closed at their timeout, not left open
    await until(() => held.filter((s) => !s.destroyed && s.readyState === "open").length <= 1, 3_000, "probe sockets closed");
  });

  it("refuses a check without exactly one probe kind, and bounds the interval by its setting", async () => {
    const reg = (healthCheck: object) => unary(client, "Register", { instance: { service: "bad", instanceId: "b", host: "127.0.0.1", port: 9, healthCheck } });
    const both: any = await reg({ http: {}, tcp: {} }).catch((e) => e);
    expect(both.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(details(both)).toBe("instance.health_check: must set exactly one of http, tcp and grpc, got http and tcp");
    const fast = await reg({ tcp: {}, interval: ms(50) }).catch((e) => e);
    expect(details(fast)).toBe("instance.health_check.interval: must be 0.1s..3600s (MAXINE_CHECK_INTERVAL_MIN..MAXINE_CHECK_INTERVAL_MAX), got 0.05s");
    const timeout = await reg({ tcp: {}, interval: ms(1000), timeout: ms(2000) }).catch((e) => e);
    expect(details(timeout)).toBe("instance.health_check.timeout: must be 0.1s..the interval (1s), got 2s");
    const range = await reg({ http: { expectedStatusMin: 500, expectedStatusMax: 200 } }).catch((e) => e);
    expect(details(range)).toContain("instance.health_check.http.expected_status_min: and expected_status_max must make a range within 100..599");
  });
});

describe("the concurrency limit (MAXINE_CHECK_CONCURRENCY) under 1,000 slow targets", () => {
  it("never has more probes in flight than the limit, and still probes every target", async () => {
    const LIMIT = 40;
    let inFlight = 0;
    let peak = 0;
    const seen = new Set<string>();
    const slow = createHttpServer((req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      seen.add(String(req.url));
      // in flight until its connection closes: answered, or dropped by the probe's timeout
      res.once("close", () => inFlight--);
      const t = setTimeout(() => res.writeHead(200).end("slow ok"), 100);
      res.once("close", () => clearTimeout(t));
    });
    const port = await listen(slow);
    const server = await startInProcess({ ...FAST, MAXINE_CHECK_CONCURRENCY: String(LIMIT) });
    const client = grpcClient(server.port);
    try {
      // 1,000 instances, each its own check (path names it, so the target can tell them apart)
      for (let i = 0; i < 1_000; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            unary(client, "Register", {
              instance: { service: "many", instanceId: `m-${i + j}`, host: "127.0.0.1", port, healthCheck: { http: { path: `/p/${i + j}` }, interval: ms(1_000), timeout: ms(1_000) } },
            }),
          ),
        );
      }
      // each round needs 1,000 x 100 ms / 40 = 2.5 s of probe time: the limit is reached and held
      await until(() => seen.size === 1_000, 20_000, "every target probed");
      expect(peak).toBe(LIMIT);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toMatch(/^maxine_checks 1000$/m);
      const running = Number(/^maxine_check_probes_running (\d+)$/m.exec(metrics)![1]);
      expect(running).toBeLessThanOrEqual(LIMIT);
      expect(Number(/^maxine_check_probes_total\{kind="http",result="pass"\} (\d+)$/m.exec(metrics)![1])).toBeGreaterThanOrEqual(1_000);
      expect(metrics).toMatch(/^maxine_check_schedule_slip_seconds_count \d+$/m);
      await until(async () => (await unary<any>(client, "ListServices", {})).services.find((s: any) => s.service === "many")?.servingCount === 1_000, 10_000, "all serving");
    } finally {
      client.close();
      await server.close();
      await closeServer(slow);
    }
    expect(peak).toBe(LIMIT);
  }, 60_000);
});

describe("where probes may go (MAXINE_CHECK_ALLOW)", () => {
  let server: Maxine & { url: string };
  let client: grpc.Client & Record<string, any>;
  beforeAll(async () => {
    server = await startInProcess({ ...FAST, MAXINE_CHECK_ALLOW: "127.0.0.1/32" });
    client = grpcClient(server.port);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });
  const reg = (host: string, port: number) =>
    unary(client, "Register", { instance: { service: "allow", instanceId: `a-${host}-${port}`.replace(/[^A-Za-z0-9._:-]/g, "_"), host, port, healthCheck: { tcp: {} } } }).catch((e) => e);

  it("allows 127.0.0.1/32 and refuses 127.0.0.2, naming the rule and the setting, on every protocol", async () => {
    expect(await reg("127.0.0.1", 9)).toMatchObject({ instance: { instanceId: "a-127.0.0.1-9" } });
    const refused: any = await reg("127.0.0.2", 9);
    expect(refused.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(details(refused)).toBe("instance.health_check: probe target 127.0.0.2:9 is outside the networks health checks may reach (MAXINE_CHECK_ALLOW=127.0.0.1/32)");
    // the same refusal in Connect JSON over HTTP/1.1
    const json = await postJson(server.url, "Register", { instance: { service: "allow", instanceId: "j", host: "127.0.0.2", port: 9, healthCheck: { tcp: {} } } });
    expect(json.status).toBe(400);
    expect(json.json).toMatchObject({ code: "invalid_argument", message: expect.stringContaining("MAXINE_CHECK_ALLOW=127.0.0.1/32") });
    // without a check, any host may be registered: the allow-list is about where the registry connects
    expect(await unary(client, "Register", { instance: { service: "allow", instanceId: "plain", host: "127.0.0.2", port: 9 } })).toBeTruthy();
  });

  it("never probes link-local addresses or the registry's own listening address", async () => {
    expect(details(await reg("169.254.169.254", 80))).toBe("instance.health_check: probe target 169.254.169.254:80 is link-local 169.254.0.0/16, which health checks never reach");
    expect(details(await reg("fe80::1", 80))).toBe("instance.health_check: probe target [fe80::1]:80 is link-local fe80::/10, which health checks never reach");
    expect(details(await reg("127.0.0.1", server.port))).toBe(`instance.health_check: probe target 127.0.0.1:${server.port} is this registry's own listening address, which health checks never reach`);
    // a check's own port counts, not only the instance's
    const own = await unary(client, "Register", { instance: { service: "allow", instanceId: "own", host: "127.0.0.1", port: 9, healthCheck: { tcp: {}, port: server.port } } }).catch((e) => e);
    expect(details(own)).toContain("this registry's own listening address");
  });

  it("resolves a DNS name and checks every address it has", async () => {
    expect(await reg("localhost", 9)).toMatchObject({ instance: { host: "localhost" } }); // 127.0.0.1 (and ::1, refused here only if returned)
  }, 10_000);
});

describe("registering a check needs the permission to register the instance", () => {
  const ADMIN = "tok-admin-7d1f0c2b9e";
  const READER = "tok-reader-0a4e9c3d51";
  let dir: string;
  let server: Maxine & { url: string };
  let client: grpc.Client & Record<string, any>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "maxine-checks-auth-"));
    const sha = (t: string) => createHash("sha256").update(t).digest("hex");
    writeFileSync(join(dir, "tokens"), `ops sha256:${sha(ADMIN)} admin\nviewer sha256:${sha(READER)} reader\n`);
    writeFileSync(
      join(dir, "policy.yaml"),
      'roles:\n  admin:\n    - { permissions: [read, register, admin], namespaces: ["*"], services: ["*"] }\n  reader:\n    - { permissions: [read], namespaces: ["*"], services: ["*"] }\n',
    );
    server = await startInProcess({ ...FAST, MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"), MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml") });
    client = grpcClient(server.port);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const as = (token: string) => {
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    return md;
  };
  const register = (token: string) =>
    new Promise<any>((resolve) =>
      client.Register({ instance: { service: "guarded", instanceId: "g", host: "127.0.0.1", port: 9, healthCheck: { tcp: {} } } }, as(token), (err: unknown, res: unknown) => resolve(err ?? res)),
    );

  it("refuses a reader, accepts a registrant", async () => {
    const refused = await register(READER);
    expect(refused.code).toBe(grpc.status.PERMISSION_DENIED);
    const ok = await register(ADMIN);
    expect(ok.instance.healthCheck.tcp).toEqual({});
  });
});
