import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus as Status } from "@maxine/sdk/gen/grpc/health/v1/health_pb";
import { describe, expect, it } from "vitest";
import type { Interceptor } from "../src/rpc/context.js";
import { Collector, unary } from "./support/grpc-client.js";
import { healthClient } from "./support/health-client.js";
import { startInProcess } from "./support/in-process.js";

// grpc.health.v1 on the registry's port, through the registry's pipeline:
// Check and Watch with @grpc/grpc-js (an independent implementation) across
// a drain, on Maxine's framing and connect-es's; every protocol.

const REGISTRY = "maxine.registry.v1.RegistryService";

describe.each(["on", "off"])("grpc.health.v1 with MAXINE_FAST_PATH=%s", (fastPath) => {
  it("answers Check, streams Watch, and says NOT_SERVING before a drain ends the stream", async () => {
    const server = await startInProcess({ MAXINE_FAST_PATH: fastPath });
    const client = healthClient(server.port);
    try {
      expect(await unary(client, "Check", { service: "" })).toEqual({ status: "SERVING" });
      expect(await unary(client, "Check", { service: REGISTRY })).toEqual({ status: "SERVING" });
      const unknown = await unary(client, "Check", { service: "payments.v1.Nope" }).catch((e: grpc.ServiceError) => e);
      expect(unknown).toMatchObject({ code: grpc.status.NOT_FOUND });
      expect((unknown as grpc.ServiceError).details).toContain('unknown service \"payments.v1.Nope\"');
      const list = await unary<{ statuses: Record<string, { status: string }> }>(client, "List", {});
      expect(list.statuses).toEqual({ "": { status: "SERVING" }, [REGISTRY]: { status: "SERVING" } });

      const server_ = new Collector(client.Watch({ service: "" }) as grpc.ClientReadableStream<{ status: string }>);
      const registry = new Collector(client.Watch({ service: REGISTRY }) as grpc.ClientReadableStream<{ status: string }>);
      const nope = new Collector(client.Watch({ service: "nope" }) as grpc.ClientReadableStream<{ status: string }>);
      await server_.waitFor((m) => m.length === 1);
      await registry.waitFor((m) => m.length === 1);
      await nope.waitFor((m) => m.length === 1);
      expect(nope.messages).toEqual([{ status: "SERVICE_UNKNOWN" }]);
      expect(nope.ended || nope.error !== undefined).toBe(false); // the health protocol keeps it open

      await server.close();
      for (const w of [server_, registry, nope]) await w.closed();
      expect(server_.messages).toEqual([{ status: "SERVING" }, { status: "NOT_SERVING" }]);
      expect(registry.messages).toEqual([{ status: "SERVING" }, { status: "NOT_SERVING" }]);
      expect(nope.messages).toEqual([{ status: "SERVICE_UNKNOWN" }]);
      for (const w of [server_, registry, nope]) expect(w.error?.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe("grpc.health.v1 on every protocol", () => {
  it("is served through the pipeline's interceptors over gRPC, gRPC-Web and Connect", async () => {
    const seen: string[] = [];
    const recorder: Interceptor = {
      onStart(ctx) {
        seen.push(`${ctx.method.path} ${ctx.protocol}`);
      },
    };
    const server = await startInProcess({}, { interceptors: [recorder] });
    const h2 = new Http2SessionManager(`http://127.0.0.1:${server.port}`);
    try {
      const transports = [
        createGrpcTransport({ baseUrl: server.url, sessionManager: h2 }),
        createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }),
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false }),
      ];
      for (const t of transports) {
        const health = createClient(Health, t);
        expect((await health.check({ service: REGISTRY })).status).toBe(Status.SERVING);
        for await (const r of health.watch({ service: "" })) {
          expect(r.status).toBe(Status.SERVING);
          break; // the client cancels
        }
      }
      // plain fetch with Connect's JSON mapping
      const res = await fetch(`${server.url}/grpc.health.v1.Health/Check`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect(await res.json()).toEqual({ status: "SERVING" });
      expect(seen).toEqual([
        "/grpc.health.v1.Health/Check grpc",
        "/grpc.health.v1.Health/Watch grpc",
        "/grpc.health.v1.Health/Check grpc-web",
        "/grpc.health.v1.Health/Watch grpc-web",
        "/grpc.health.v1.Health/Check connect",
        "/grpc.health.v1.Health/Watch connect",
        "/grpc.health.v1.Health/Check connect",
      ]);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain('maxine_rpc_requests_total{method="Check",protocol="connect",code="ok"} 2\n');
      expect(metrics).toContain('maxine_rpc_requests_total{method="Check",protocol="grpc",code="ok"} 1\n');
    } finally {
      h2.abort();
      await server.close();
    }
  });
});
