import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { Collector, details, grpcClient, unary } from "./support/grpc-client.js";
import { postJson, startInProcess } from "./support/in-process.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { startReplica, stopReplica, type Replica } from "./support/replicas.js";

// Discover with include_all lists each instance with its live lease state:
// the load its beats last reported (Instance.reported_load) and when it goes
// unless renewed (Instance.lease_expires_at). Checked over real HTTP/2 with
// @grpc/grpc-js (no generated code) and over HTTP/1.1 with plain fetch and
// Connect JSON, on Maxine's own framing and on connect-es's (MAXINE_FAST_PATH),
// and on two Redis replicas (only the replica holding the stream knows).

const inst = (service: string, id: string, over: object = {}) => ({ service, instanceId: id, host: "10.9.0.1", port: 7000, ...over });
const ms = (t: { seconds: string | bigint; nanos: number }) => Number(t.seconds) * 1000 + t.nanos / 1_000_000;

describe.each(["on", "off"])("Discover include_all with MAXINE_FAST_PATH=%s", (fastPath) => {
  let server: Maxine & { url: string };
  let client: ReturnType<typeof grpcClient>;
  beforeAll(async () => {
    server = await startInProcess({ MAXINE_FAST_PATH: fastPath, MAXINE_GRACE: "2s" });
    client = grpcClient(server.port);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  it("carries the load the beats reported and the lease deadline the beats were answered with", async () => {
    await unary(client, "Register", { instance: inst("lease-svc", "beating"), leaseTtl: { seconds: 30 } });
    // server-set: a client's values in Register are ignored
    const registered = await unary<any>(client, "Register", {
      instance: inst("lease-svc", "unary-only", { reportedLoad: 99, leaseExpiresAt: { seconds: 4_000_000_000 } }),
      leaseTtl: { seconds: 600 },
    });
    expect(registered.instance.leaseExpiresAt).toBeNull();
    const hb = new Collector(client.Heartbeat());
    try {
      hb.call.write({ sequence: 1, beats: [{ key: { service: "lease-svc", instanceId: "beating" }, load: 7.25 }] });
      const [ack] = (await hb.waitFor((m) => m.length === 1))[0].acks;
      expect(ack.result).toBe("BEAT_RESULT_RENEWED");

      // @grpc/grpc-js, binary
      const d = await unary<any>(client, "Discover", { service: "lease-svc", includeAll: true });
      const [beating, unaryOnly] = d.instances;
      expect(beating).toMatchObject({ instanceId: "beating", reportedLoad: 7.25, leaseExpiresAt: ack.leaseExpiresAt });
      expect(unaryOnly.instanceId).toBe("unary-only");
      expect(unaryOnly.leaseExpiresAt).toEqual(registered.leaseExpiresAt);
      // the one chosen instance has no live state: that answer is kept per revision, whatever the beats do
      expect(d.instance.leaseExpiresAt).toBeNull();

      // plain fetch, Connect JSON: never reported a load is no reportedLoad at all (0 is a load)
      const { status, json } = await postJson(server.url, "Discover", { service: "lease-svc", includeAll: true });
      expect(status).toBe(200);
      expect(json.instances[0]).toMatchObject({ instanceId: "beating", reportedLoad: 7.25 });
      expect(Date.parse(json.instances[0].leaseExpiresAt)).toBe(ms(ack.leaseExpiresAt));
      expect(json.instances[1]).not.toHaveProperty("reportedLoad");
      expect(Date.parse(json.instances[1].leaseExpiresAt)).toBe(ms(registered.leaseExpiresAt));
      expect(json.instance).not.toHaveProperty("reportedLoad");
      expect(json.instance).not.toHaveProperty("leaseExpiresAt");

      // a load of 0 is reported as 0; a new beat moves the deadline (no revision, no event)
      hb.call.write({ sequence: 2, beats: [{ key: { service: "lease-svc", instanceId: "beating" }, load: 0 }] });
      const second = (await hb.waitFor((m) => m.length === 2))[1].acks[0];
      const again = await postJson(server.url, "Discover", { service: "lease-svc", includeAll: true });
      expect(again.json.instances[0].reportedLoad).toBe(0);
      expect(Date.parse(again.json.instances[0].leaseExpiresAt)).toBe(ms(second.leaseExpiresAt));
      expect(again.json.revision).toBe(json.revision);
    } finally {
      hb.call.end();
    }
    // the stream ended: the instance goes at the end of the grace (2 s), well before its 30 s lease
    const deadline = Date.now() + 5_000;
    for (;;) {
      const { json } = await postJson(server.url, "Discover", { service: "lease-svc", includeAll: true });
      const left = Date.parse(json.instances[0].leaseExpiresAt) - Date.now();
      if (left <= 2_000) {
        expect(left).toBeGreaterThan(-1_000);
        break;
      }
      if (Date.now() > deadline) throw new Error(`lease_expires_at still ${left} ms away after the stream ended`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it("lists a service with nothing SERVING (no chosen instance); NOT_FOUND without include_all or when nothing matches", async () => {
    await unary(client, "Register", { instance: inst("drained-svc", "d-1", { status: "SERVING_STATUS_DRAINING" }) });
    await unary(client, "Register", { instance: inst("drained-svc", "d-2", { status: "SERVING_STATUS_NOT_SERVING" }) });
    const d = await unary<any>(client, "Discover", { service: "drained-svc", includeAll: true });
    expect(d.instance).toBeNull();
    expect(d.instances.map((i: any) => [i.instanceId, i.status])).toEqual([
      ["d-1", "SERVING_STATUS_DRAINING"],
      ["d-2", "SERVING_STATUS_NOT_SERVING"],
    ]);
    expect(ms(d.instances[0].leaseExpiresAt)).toBeGreaterThan(Date.now());
    const { status, json } = await postJson(server.url, "Discover", { service: "drained-svc", includeAll: true });
    expect(status).toBe(200);
    expect(json).not.toHaveProperty("instance");
    expect(json.instances).toHaveLength(2);

    await expect(unary(client, "Discover", { service: "drained-svc" })).rejects.toMatchObject({ code: 5 });
    const filtered = await unary<any>(client, "Discover", { service: "drained-svc", includeAll: true, filter: { zone: "nowhere" } }).catch((e: any) => e);
    expect(filtered.code).toBe(5);
    expect(details(filtered)).toContain("service default/drained-svc has no SERVING instance matching the filter (2 registered, 0 matching, none serving)");
    const unknown = await unary<any>(client, "Discover", { service: "no-such-svc", includeAll: true }).catch((e: any) => e);
    expect(unknown.code).toBe(5);
    expect(details(unknown)).toContain("service default/no-such-svc has no instances");
  });
});

describe("Discover include_all on two Redis replicas", () => {
  let redis: RedisProcess;
  let a: Replica, b: Replica;
  beforeAll(async () => {
    redis = await startRedis();
    const registry = `lease-state-${randomUUID().slice(0, 8)}`;
    [a, b] = await Promise.all([startReplica(redis.url, registry), startReplica(redis.url, registry)]);
  });
  afterAll(async () => {
    await Promise.all([stopReplica(a), stopReplica(b)]);
    await redis?.close();
  });

  it("the replica holding the heartbeat stream knows the load and the deadline; another leaves them out", async () => {
    const client = grpcClient(a.server.port);
    const hb = new Collector(client.Heartbeat());
    try {
      // registered through B (B renewed the lease once, by Register), then beaten on A's stream: B's own deadline is stale
      await b.client.register({ instance: inst("shared", "s-1"), leaseTtl: { seconds: 30n } });
      await new Promise((r) => setTimeout(r, 50)); // A's beat renews to a later deadline than B's Register
      hb.call.write({ sequence: 1, beats: [{ key: { service: "shared", instanceId: "s-1" }, load: 3.5 }] });
      const ack = (await hb.waitFor((m) => m.length === 1))[0].acks[0];
      const onA = await a.client.discover({ service: "shared", includeAll: true });
      expect(onA.instances[0]?.reportedLoad).toBe(3.5);
      expect(timestampMs(onA.instances[0]!.leaseExpiresAt!)).toBe(ms(ack.leaseExpiresAt));
      // B knows the instance (one registry) but not A's stream: absent, not its own stale deadline
      const deadline = Date.now() + 5_000;
      let onB = await b.client.discover({ service: "shared", includeAll: true }).catch((e: unknown) => e);
      while (onB instanceof ConnectError && onB.code === Code.NotFound && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
        onB = await b.client.discover({ service: "shared", includeAll: true }).catch((e: unknown) => e);
      }
      if (onB instanceof Error) throw onB;
      const seen = (onB as Awaited<ReturnType<typeof b.client.discover>>).instances[0]!;
      expect(seen.instanceId).toBe("s-1");
      expect(seen.reportedLoad).toBeUndefined();
      expect(seen.leaseExpiresAt).toBeUndefined();
    } finally {
      hb.call.end();
      client.close();
    }
  });
});
