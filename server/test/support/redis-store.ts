import { randomUUID } from "node:crypto";
import { systemClock } from "../../src/domain/clock.js";
import { silentLogger } from "../../src/domain/logger.js";
import { RedisStore, type RedisStoreOptions } from "../../src/store/redis-store.js";

/** redisStore connects a RedisStore for tests: a fresh registry name unless given, short intervals, no sweeper unless asked. */
export function redisStore(url: string, over: Partial<RedisStoreOptions> = {}): Promise<RedisStore> {
  return RedisStore.connect({
    url,
    sentinels: [],
    sentinelName: "mymaster",
    registry: `test-${randomUUID().slice(0, 8)}`,
    logMax: 10_000,
    historySize: 1000,
    renewIntervalMs: 50,
    sweepIntervalMs: 50,
    lockTtlMs: 1000,
    recoveryWindowMs: 1000,
    commandTimeoutMs: 1000,
    connectTimeoutMs: 5000,
    clock: systemClock,
    logger: silentLogger,
    sweep: false,
    ...over,
  });
}
