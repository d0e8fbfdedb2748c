import { randomUUID } from "node:crypto";
import type * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Collector, unary } from "./support/grpc-client.js";
import { healthClient } from "./support/health-client.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { startReplica, stopReplica, type Replica } from "./support/replicas.js";

// Redis mode: while Redis is unreachable, reads are served and writes fail.
// grpc.health.v1 then says NOT_SERVING for maxine.registry.v1.RegistryService
// (a readiness probe on that name takes the replica out of rotation) and
// SERVING for "" (the process is alive: a liveness probe leaves it), the
// same state /healthz reports as "degraded"; Watch streams both transitions.

const REGISTRY = "maxine.registry.v1.RegistryService";
let redis: RedisProcess;
let replica: Replica;

beforeAll(async () => {
  redis = await startRedis();
  replica = await startReplica(redis.url, `health-${randomUUID().slice(0, 8)}`, { MAXINE_REDIS_COMMAND_TIMEOUT: "500ms" });
});
afterAll(async () => {
  await stopReplica(replica);
  await redis?.close();
});

it("reports the registry NOT_SERVING while Redis is unreachable and SERVING again when it is back", async () => {
  const client = healthClient(replica.server.port);
  try {
    const registry = new Collector(client.Watch({ service: REGISTRY }) as grpc.ClientReadableStream<{ status: string }>);
    const server = new Collector(client.Watch({ service: "" }) as grpc.ClientReadableStream<{ status: string }>);
    await registry.waitFor((m) => m.length === 1);
    await server.waitFor((m) => m.length === 1);
    expect(registry.messages).toEqual([{ status: "SERVING" }]);

    await redis.stop();
    await registry.waitFor((m) => m.length === 2, 10_000);
    expect(registry.messages[1]).toEqual({ status: "NOT_SERVING" });
    expect(await unary(client, "Check", { service: REGISTRY })).toEqual({ status: "NOT_SERVING" });
    expect(await unary(client, "Check", { service: "" })).toEqual({ status: "SERVING" });
    const healthz = (await (await fetch(`${replica.server.url}/healthz`)).json()) as { status: string };
    expect(healthz.status).toBe("degraded");

    await redis.start();
    await registry.waitFor((m) => m.length === 3, 15_000);
    expect(registry.messages[2]).toEqual({ status: "SERVING" });
    expect(await unary(client, "Check", { service: REGISTRY })).toEqual({ status: "SERVING" });
    expect(server.messages).toEqual([{ status: "SERVING" }]); // "" never changed
    registry.call.cancel();
    server.call.cancel();
  } finally {
    client.close();
  }
});
