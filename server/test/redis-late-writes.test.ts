import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RegistryError, Reason } from "../src/domain/errors.js";
import type { InstanceSpec } from "../src/domain/instance.js";
import type { RedisStore } from "../src/store/redis-store.js";
import { startRedis, type RedisProcess } from "./support/redis-server.js";
import { redisStore } from "./support/redis-store.js";

// A write sent to a Redis that froze (SIGSTOP) times out and its caller is
// told UNAVAILABLE; when Redis resumes, it still holds the script in its
// socket buffer. The script's deadline (Redis clock) makes it refuse to run
// late, so a write reported as failed never appears afterwards.

let redis: RedisProcess;
let writer: RedisStore;
let reader: RedisStore;

beforeAll(async () => {
  redis = await startRedis();
  const registry = `late-${randomUUID().slice(0, 8)}`;
  writer = await redisStore(redis.url, { registry, commandTimeoutMs: 300 });
  reader = await redisStore(redis.url, { registry, commandTimeoutMs: 300 });
});
afterAll(async () => {
  await writer?.close();
  await reader?.close();
  await redis?.close();
});

function spec(id: string): InstanceSpec {
  return { namespace: "default", service: "late", instanceId: id, host: "10.0.0.1", port: 80, version: "", zone: "", tags: [], metadata: {}, weight: 100, status: "SERVING", owner: "anonymous" };
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

it("never applies a write that reached a frozen Redis after its deadline", async () => {
  redis.pause();
  let err: unknown;
  try {
    err = await writer.put(spec("late"), Date.now(), { ttlMs: 60_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 800)); // frozen well past the 300 ms deadline: the freeze's length is the scenario
  } finally {
    redis.resume();
  }
  expect(err).toBeInstanceOf(RegistryError);
  expect((err as RegistryError).reason).toBe(Reason.UNAVAILABLE);
  // A later write through the other replica: once its mirror has it, it would have the late one too.
  await until(() => writer.health().status === "ok" && reader.health().status === "ok", "both replicas back");
  let marker;
  for (let i = 0; marker === undefined && i < 50; i++) {
    marker = await reader.put(spec("marker"), Date.now(), { ttlMs: 60_000 }).catch(() => undefined);
    if (marker === undefined) await new Promise((r) => setTimeout(r, 100));
  }
  expect(marker).toBeDefined();
  await until(() => writer.get(spec("marker")) !== undefined, "the marker in the writer's mirror");
  expect(reader.get(spec("late"))).toBeUndefined();
  expect(writer.get(spec("late"))).toBeUndefined();
});
