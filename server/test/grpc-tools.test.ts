import { execFile, spawn } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { goTool } from "./support/go-tools.js";
import { postJson } from "./support/in-process.js";
import { startServerProcess, type ServerProcess } from "./support/server-process.js";

// The tools an operator reaches for, as they are, against a real server
// process: grpc_health_probe (grpc.health.v1), grpcurl and buf curl through
// server reflection (v1, and v1alpha with buf curl), no proto files given.

const run = promisify(execFile);
const REGISTRY = "maxine.registry.v1.RegistryService";
let server: ServerProcess;
let addr: string;

/** tool runs a command and resolves with its exit code and output (a failing exit is a result, not an error). */
async function tool(cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw err;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

beforeAll(async () => {
  server = await startServerProcess({ MAXINE_LOG_LEVEL: "debug" }); // every call logged: which reflection version served
  addr = `127.0.0.1:${server.port}`;
  const reg = await postJson(server.url, "Register", { instance: { service: "payments", instanceId: "payments-1", host: "10.0.0.7", port: 8080 }, leaseTtl: "60s" });
  expect(reg.status).toBe(200);
});
afterAll(async () => {
  await server?.stop();
});

describe("grpc_health_probe", () => {
  it("exits 0 for the server and the registry service, 3 (NOT_FOUND) for an unknown service", async () => {
    const probe = goTool("grpc-health-probe");
    // the probe reports on stderr
    expect(await tool(probe, ["-addr", addr])).toMatchObject({ code: 0, stderr: "status: SERVING\n" });
    expect(await tool(probe, ["-addr", addr, "-service", REGISTRY])).toMatchObject({ code: 0, stderr: "status: SERVING\n" });
    const unknown = await tool(probe, ["-addr", addr, "-service", "payments.v1.Nope"]);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain("NotFound");
  });
});

describe("grpcurl through server reflection", () => {
  it("lists and describes the services", async () => {
    const grpcurl = goTool("grpcurl");
    const list = await tool(grpcurl, ["-plaintext", addr, "list"]);
    expect(list.code).toBe(0);
    expect(list.stdout.trim().split("\n")).toEqual([
      "envoy.service.discovery.v3.AggregatedDiscoveryService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "maxine.config.v1.ConfigService",
      REGISTRY,
    ]);
    // the xDS service's descriptors come with their whole import tree (envoy, xds, udpa, validate)
    const ads = await tool(grpcurl, ["-plaintext", addr, "describe", "envoy.service.discovery.v3.AggregatedDiscoveryService"]);
    expect(ads.code).toBe(0);
    expect(ads.stdout).toContain("rpc DeltaAggregatedResources ( stream .envoy.service.discovery.v3.DeltaDiscoveryRequest ) returns ( stream .envoy.service.discovery.v3.DeltaDiscoveryResponse );");
    const service = await tool(grpcurl, ["-plaintext", addr, "describe", REGISTRY]);
    expect(service.code).toBe(0);
    expect(service.stdout).toContain("rpc Discover ( .maxine.registry.v1.DiscoverRequest ) returns ( .maxine.registry.v1.DiscoverResponse );");
    expect(service.stdout).toContain("rpc Heartbeat ( stream .maxine.registry.v1.HeartbeatRequest ) returns ( stream .maxine.registry.v1.HeartbeatResponse );");
    // a message that imports a well-known type: the dependencies come along
    const msg = await tool(grpcurl, ["-plaintext", addr, "describe", "maxine.registry.v1.RegisterRequest"]);
    expect(msg.code).toBe(0);
    expect(msg.stdout).toContain(".google.protobuf.Duration lease_ttl = 2;");
    const method = await tool(grpcurl, ["-plaintext", addr, "describe", `${REGISTRY}.Discover`]);
    expect(method.stdout).toContain(`${REGISTRY}.Discover is a method`);
    const missing = await tool(grpcurl, ["-plaintext", addr, "describe", "maxine.registry.v1.Nope"]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("Symbol not found");
  });

  it("calls unary RPCs with JSON and health Check", async () => {
    const grpcurl = goTool("grpcurl");
    const discover = await tool(grpcurl, ["-plaintext", "-d", '{"service":"payments"}', addr, `${REGISTRY}/Discover`]);
    expect(discover.code).toBe(0);
    expect(JSON.parse(discover.stdout)).toMatchObject({ instance: { service: "payments", instanceId: "payments-1", host: "10.0.0.7", port: 8080 } });
    const notFound = await tool(grpcurl, ["-plaintext", "-d", '{"service":"nobody"}', addr, `${REGISTRY}/Discover`]);
    expect(notFound.code).toBe(69); // grpcurl: 64 + NOT_FOUND (5)
    expect(notFound.stdout + notFound.stderr).toContain("service default/nobody has no instances");
    const check = await tool(grpcurl, ["-plaintext", addr, "grpc.health.v1.Health/Check"]);
    expect(JSON.parse(check.stdout)).toEqual({ status: "SERVING" });
  });

  it("streams WatchServices: the snapshot, then a change made elsewhere", async () => {
    const watch = spawn(goTool("grpcurl"), ["-plaintext", "-d", '{"services":["payments"]}', addr, `${REGISTRY}/WatchServices`], { stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<void>((resolve) => watch.once("exit", () => resolve()));
    let out = "";
    watch.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const seen = async (text: string): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!out.includes(text)) {
        if (Date.now() > deadline) throw new Error(`grpcurl never printed ${text}; got ${out}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      await seen('"snapshotEnd"');
      expect(out).toContain('"instanceId": "payments-1"');
      await postJson(server.url, "Register", { instance: { service: "payments", instanceId: "payments-2", host: "10.0.0.8", port: 8080 }, leaseTtl: "60s" });
      await seen('"EVENT_TYPE_ADDED"');
      expect(out).toContain('"instanceId": "payments-2"');
    } finally {
      watch.kill("SIGTERM");
      await exited;
      await postJson(server.url, "Deregister", { key: { service: "payments", instanceId: "payments-2" } });
    }
  });
});

describe("buf curl --reflect", () => {
  for (const [protocol, args] of [
    ["grpc-v1", ["--protocol", "grpc", "--http2-prior-knowledge"]],
    ["grpc-v1alpha", ["--protocol", "grpc", "--http2-prior-knowledge"]],
    ["grpc-v1", ["--protocol", "connect", "--http2-prior-knowledge"]],
  ] as const) {
    it(`calls Discover with reflection ${protocol} over ${args[1]}`, async () => {
      const r = await tool("npx", ["buf", "curl", ...args, "--reflect", "--reflect-protocol", protocol, "-d", '{"service":"payments"}', `${server.url}/${REGISTRY}/Discover`]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ instance: { instanceId: "payments-1" } });
      const version = protocol.slice("grpc-".length);
      const served = server.logs.filter((l) => l.includes(`"procedure":"/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo"`));
      expect(served.length).toBeGreaterThan(0);
    });
  }
});
