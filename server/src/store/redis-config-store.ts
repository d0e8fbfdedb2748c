import { randomUUID } from "node:crypto";
import type { Cluster, Redis } from "ioredis";
import type { ConfigChange, ConfigEntry, ConfigLimits } from "../domain/config-entry.js";
import { Reason, RegistryError } from "../domain/errors.js";
import type { Logger } from "../domain/logger.js";
import { BatchedConfigStore, type Commit } from "./batched-config-store.js";
import { changeOf, decodeConfigEntry as entryOf, encodeConfigEntry as recordOf } from "./config-store.js";
import { connection, type RedisAddress } from "./redis-store.js";

/** RedisConfigOptions configure the configuration store of Redis mode. */
export interface RedisConfigOptions extends RedisAddress {
  /** registry names the registry: the keys share its hash tag {maxine:NAME} (MAXINE_REDIS_REGISTRY). */
  readonly registry: string;
  /** logMax is about how many changes the change stream keeps for replicas catching up (MAXINE_REDIS_LOG_MAX). */
  readonly logMax: number;
  readonly limits: ConfigLimits;
  readonly logger: Logger;
}

// How long one XREAD waits for other replicas' changes before it looks again.
const BLOCK_MS = 2000;
const RETRY_MS = 500;

/**
 * COMMIT commits a batch planned at revision ARGV[1] only if the shared
 * revision is still that (else it returns the revision now, and the batch
 * is planned again): the rules (compare-and-set, versions, limits) are
 * planWrite's, in TypeScript, the same for every store; Redis only orders
 * the commits. ARGV: base, logMax, N, then N (revision, record) pairs,
 * then the revisions of the records the history depth drops.
 */
const COMMIT = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local base = tonumber(ARGV[1])
if cur ~= base then return cur end
local n = tonumber(ARGV[3])
local last = base
for i = 0, n - 1 do
  local rev = ARGV[4 + 2 * i]
  local record = ARGV[5 + 2 * i]
  redis.call('HSET', KEYS[2], rev, record)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], rev .. '-0', 'r', record)
  last = tonumber(rev)
end
for i = 4 + 2 * n, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
redis.call('SET', KEYS[1], last)
return -1
`;

/**
 * RedisConfigStore keeps service configuration in Redis (MAXINE_STORE=redis),
 * shared by every replica with one sequence of revisions: each kept
 * version is a field of one hash, each change is appended to a stream that
 * every replica reads (XREAD BLOCK) into its local view, and a batch of
 * writes commits with one script that checks the shared revision (another
 * replica committed first: the batch is planned again at the new state).
 * An acknowledged write is in Redis; how it survives a Redis crash is
 * Redis's persistence (docker-compose.yml turns on AOF). A replica whose
 * view cannot be brought forward from the stream (trimmed past it, or
 * Redis replaced) reloads the hash and resets its watchers.
 */
export class RedisConfigStore extends BatchedConfigStore {
  private readonly redisKeys: { rev: string; entries: string; log: string; id: string };
  private stopped = false;
  private readLoopDone: Promise<void> | undefined;

  private constructor(
    private readonly cmd: Redis | Cluster,
    private readonly reader: Redis | Cluster,
    private readonly opts: RedisConfigOptions,
    registryId: string,
  ) {
    super(opts.limits, registryId);
    const tag = `{maxine:${opts.registry}}`;
    this.redisKeys = { rev: `${tag}:config:rev`, entries: `${tag}:config:entries`, log: `${tag}:config:log`, id: `${tag}:config:id` };
  }

  /** connect connects, reads the configuration's identity and every kept version, and starts following the other replicas' changes. */
  static async connect(opts: RedisConfigOptions): Promise<RedisConfigStore> {
    const base = { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: (n: number) => Math.min(100 * n, 1000), lazyConnect: true, connectionName: "maxine-config" };
    const cmd = connection(opts, { ...base, commandTimeout: opts.commandTimeoutMs });
    const reader = connection(opts, { ...base, commandTimeout: BLOCK_MS + opts.commandTimeoutMs });
    cmd.defineCommand("configCommit", { numberOfKeys: 3, lua: COMMIT });
    const errors = (err: Error) => opts.logger.debug({ err: err.message }, "redis (configuration): connection error");
    cmd.on("error", errors);
    reader.on("error", errors);
    try {
      await Promise.all([cmd.connect(), reader.connect()]);
      const tag = `{maxine:${opts.registry}}`;
      await cmd.set(`${tag}:config:id`, randomUUID(), "NX");
      const id = (await cmd.get(`${tag}:config:id`))!;
      const store = new RedisConfigStore(cmd, reader, opts, id);
      await store.reload(undefined);
      store.readLoopDone = store.readLoop();
      return store;
    } catch (err) {
      cmd.disconnect();
      reader.disconnect();
      throw new RegistryError(Reason.UNAVAILABLE, `configuration store: Redis unreachable (${(err as Error).message}); check MAXINE_REDIS_URL`);
    }
  }

  protected override async prepare(): Promise<void> {
    const [id, revText] = await this.cmd.mget(this.redisKeys.id, this.redisKeys.rev);
    const rev = Number(revText ?? 0);
    // Redis lost the configuration (emptied, or a failover to a replica that lagged): take its state, under a new id
    if (id !== this.registryId || rev < this.view.revision()) await this.reload("REGISTRY_CHANGED");
    else if (rev > this.view.revision()) await this.catchUp(rev);
  }

  protected async persist({ base, changes, dropped }: Commit): Promise<boolean> {
    const args: Array<string | number> = [base, this.opts.logMax, changes.length];
    for (const c of changes) args.push(c.revision, recordOf(c.entry));
    for (const e of dropped) args.push(e.revision);
    const res = (await (this.cmd as unknown as { configCommit(...a: Array<string | number>): Promise<number> }).configCommit(
      this.redisKeys.rev,
      this.redisKeys.entries,
      this.redisKeys.log,
      ...args,
    )) as number;
    return res === -1;
  }

  override async close(): Promise<void> {
    this.stopped = true;
    await super.close();
    // both connections closed and ended (ioredis's close handling done) before close resolves: nothing of them is left running
    const ended = [this.reader, this.cmd].map((c) => (c.status === "end" ? Promise.resolve() : new Promise<void>((resolve) => c.once("end", () => resolve()))));
    this.reader.disconnect();
    await this.readLoopDone;
    this.cmd.disconnect();
    await Promise.all(ended);
  }

  /** catchUp applies the changes between the view and rev from the stream, or reloads when the stream no longer holds them. */
  private async catchUp(rev: number): Promise<void> {
    const from = this.view.revision() + 1;
    const res = (await this.cmd.xrange(this.redisKeys.log, `${from}-0`, `${rev}-0`)) as Array<[string, string[]]>;
    if (res.length === 0 || Number.parseInt(res[0]![0], 10) !== from) {
      await this.reload("COMPACTED");
      return;
    }
    for (const [id, fields] of res) {
      if (!this.applyCommitted(changeOf(entryOf(fields[1]!)))) {
        this.opts.logger.warn({ revision: Number.parseInt(id, 10) }, "configuration: gap in the Redis change stream, reloading");
        await this.reload("COMPACTED");
        return;
      }
    }
  }

  /**
   * reload replaces the view with every version the hash keeps (reason
   * undefined: the first load, no watcher to reset). After a loss
   * (REGISTRY_CHANGED) the state gets a new id, or takes the one another
   * replica gave it first.
   */
  private async reload(reason: "COMPACTED" | "REGISTRY_CHANGED" | undefined): Promise<void> {
    if (reason === "REGISTRY_CHANGED") {
      await this.cmd.set(this.redisKeys.id, randomUUID(), "NX");
      this.registryId = (await this.cmd.get(this.redisKeys.id)) ?? this.registryId;
      this.opts.logger.warn({ registryId: this.registryId }, "configuration: Redis lost its state; the replica took the new one and reset its watchers");
    }
    const all = await this.cmd.hgetall(this.redisKeys.entries);
    const entries = Object.values(all).map(entryOf);
    const changes = entries.map(changeOf).sort((a, b) => a.revision - b.revision);
    if (reason === undefined) this.load(changes);
    else this.replace(changes, reason);
  }

  private async readLoop(): Promise<void> {
    while (!this.stopped) {
      try {
        const res = (await this.reader.xread("BLOCK", BLOCK_MS, "STREAMS", this.redisKeys.log, `${this.view.revision()}-0`)) as
          | Array<[string, Array<[string, string[]]>]>
          | null;
        if (res === null) {
          // idle: make sure the configuration was not replaced under us (emptied, or gone back in time)
          await this.prepare();
          continue;
        }
        for (const [, entries] of res) {
          for (const [, fields] of entries) {
            if (!this.applyCommitted(changeOf(entryOf(fields[1]!)))) {
              await this.catchUp(Number((await this.cmd.get(this.redisKeys.rev)) ?? 0));
              break;
            }
          }
        }
      } catch (err) {
        if (this.stopped) break;
        this.opts.logger.warn({ err: (err as Error).message }, "redis (configuration): change stream unreadable, retrying");
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }
}
