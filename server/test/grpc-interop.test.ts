import { status as GrpcStatus } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { Collector, details, grpcClient, unary } from "./support/grpc-client.js";
import { startInProcess } from "./support/in-process.js";
import { startServerProcess } from "./support/server-process.js";

const inst = (id: string, service = "grpc-svc") => ({ service, instanceId: id, host: "10.2.0.1", port: 9000 });

describe("gRPC with @grpc/grpc-js and proto-loader over HTTP/2", () => {
  let server: Maxine & { url: string };
  let client: ReturnType<typeof grpcClient>;
  beforeAll(async () => {
    server = await startInProcess({
      MAXINE_GRACE: "300ms",
      MAXINE_MAX_WATCHERS_PER_CONNECTION: "3",
      MAXINE_MAX_MESSAGE_BYTES: "4096",
    });
    client = grpcClient(server.port);
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  it("Register and Discover interoperate", async () => {
    const r = await unary<any>(client, "Register", { instance: inst("g1"), leaseTtl: { seconds: 20 } });
    expect(r.instance).toMatchObject({ instanceId: "g1", status: "SERVING_STATUS_SERVING", weight: 100 });
    expect(r.leaseTtl).toMatchObject({ seconds: "20" });
    const d = await unary<any>(client, "Discover", { service: "grpc-svc" });
    expect(d.instance.instanceId).toBe("g1");
    const err = await unary(client, "Discover", { service: "grpc-none" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: GrpcStatus.NOT_FOUND });
    expect(details(err)).toBe("service default/grpc-none has no instances");
  });

  it("Heartbeat (bidi) renews leases, answers UNKNOWN, and binds liveness to the stream", async () => {
    await unary(client, "Register", { instance: inst("hb1"), leaseTtl: { seconds: 20 } });
    const watch = new Collector(client.WatchServices({ services: ["grpc-svc"] }));
    await watch.waitFor((m) => m.some((x: any) => x.snapshotEnd));

    const hb = new Collector(client.Heartbeat());
    hb.call.write({ sequence: 7, beats: [{ key: { service: "grpc-svc", instanceId: "hb1" }, load: 0.5 }] });
    hb.call.write({ sequence: 8, beats: [{ key: { service: "grpc-svc", instanceId: "ghost" } }] });
    const [first, second] = await hb.waitFor((m) => m.length >= 2);
    expect(first).toMatchObject({ sequence: "7", acks: [{ result: "BEAT_RESULT_RENEWED" }] });
    const deadline = Number(first.acks[0].leaseExpiresAt.seconds) * 1000;
    expect(deadline - Date.now()).toBeGreaterThan(18_000);
    expect(second).toMatchObject({ sequence: "8", acks: [{ result: "BEAT_RESULT_UNKNOWN", key: { instanceId: "ghost" } }] });

    // The stream dies without a Deregister: the instance goes after the grace.
    const cancelledAt = Date.now();
    hb.call.cancel();
    const events = await watch.waitFor((m) => m.some((x: any) => x.event?.type === "EVENT_TYPE_REMOVED"));
    const removed = events.find((x: any) => x.event?.type === "EVENT_TYPE_REMOVED").event;
    expect(removed).toMatchObject({ instance: { instanceId: "hb1" }, removalReason: "REMOVAL_REASON_STREAM_CLOSED" });
    const elapsed = Date.now() - cancelledAt;
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(1_500);
    watch.call.cancel();
  });

  it("limits watch streams per connection with RESOURCE_EXHAUSTED", async () => {
    const streams = [1, 2, 3].map(() => new Collector(client.WatchServices({})));
    for (const s of streams) await s.waitFor((m) => m.some((x: any) => x.snapshotEnd));
    const fourth = new Collector(client.WatchServices({}));
    await fourth.closed();
    expect(fourth.error?.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(details(fourth.error)).toBe("watch: this connection already holds the maximum of 3 watch streams (MAXINE_MAX_WATCHERS_PER_CONNECTION)");
    for (const s of streams) s.call.cancel();
    await expect.poll(() => server.hub.watchers).toBe(0);
  });

  it("rejects a message over the size limit and keeps serving", async () => {
    const big = { ...inst("big"), metadata: { blob: "x".repeat(8_000) } };
    const err = await unary(client, "Register", { instance: big }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED });
    expect((await unary<any>(client, "ListServices", {})).services.length).toBeGreaterThan(0);
  });

  it("rejects an invalid watch request with INVALID_ARGUMENT naming the field", async () => {
    const bad = new Collector(client.WatchServices({ services: ["ok", "not ok"] }));
    await bad.closed();
    expect(bad.error?.code).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(details(bad.error)).toBe('services[1]: must be 1..128 characters of [A-Za-z0-9._-], got "not ok"');
  });
});

describe("shutdown", () => {
  it("SIGTERM ends open streams with UNAVAILABLE and exits 0", async () => {
    const proc = await startServerProcess();
    const client = grpcClient(proc.port);
    try {
      await unary(client, "Register", { instance: inst("s1") });
      const watch = new Collector(client.WatchServices({}));
      const hb = new Collector(client.Heartbeat());
      hb.call.write({ sequence: 1, beats: [{ key: { service: "grpc-svc", instanceId: "s1" } }] });
      await hb.waitFor((m) => m.length === 1);
      await watch.waitFor((m) => m.some((x: any) => x.snapshotEnd));
      const code = await proc.stop();
      await watch.closed();
      await hb.closed();
      expect(watch.error?.code).toBe(GrpcStatus.UNAVAILABLE);
      expect(hb.error?.code).toBe(GrpcStatus.UNAVAILABLE);
      expect(code).toBe(0);
      expect(proc.logs.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    } finally {
      client.close();
      if (proc.child.exitCode === null) await proc.kill();
    }
  });
});
