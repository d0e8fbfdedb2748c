import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ClassicLevel } from "classic-level";
import type { ConfigChange, ConfigEntry, ConfigLimits } from "../domain/config-entry.js";
import { Reason, RegistryError } from "../domain/errors.js";
import { BatchedConfigStore, type Commit } from "./batched-config-store.js";
import { changeOf, decodeConfigEntry as entryOf, encodeConfigEntry as recordOf } from "./config-store.js";

/** LevelConfigOptions configure the durable configuration store. */
export interface LevelConfigOptions {
  /** dir is the data directory (MAXINE_DATA_DIR); the database is dir/config. */
  readonly dir: string;
  readonly limits: ConfigLimits;
  /** fsync: each batch is flushed to disk before its writes are acknowledged (MAXINE_CONFIG_FSYNC). */
  readonly fsync: boolean;
}

const META_ID = "meta/registry-id";
const META_REVISION = "meta/revision";
const VERSION = "v/";

/**
 * LevelConfigStore is the embedded default configuration store: LevelDB
 * (classic-level, whose npm package carries its binaries) in the data
 * directory. Each kept version is one record keyed by its revision; a batch
 * of writes (group commit, BatchedConfigStore) is one atomic LevelDB batch,
 * written with sync (fsync) before any of its writes is acknowledged, so an
 * acknowledged write survives a crash of the process or of the machine.
 * Versions the history depth drops are deleted in the same batch. On open,
 * every record is read back into the view; the registryId is kept too, so
 * a watch resumes across a restart (ADR 0012).
 */
export class LevelConfigStore extends BatchedConfigStore {
  private constructor(
    private readonly db: ClassicLevel<string, string>,
    private readonly fsync: boolean,
    limits: ConfigLimits,
    registryId: string,
  ) {
    super(limits, registryId);
  }

  /**
   * open opens (creating it if needed) the database in opts.dir. A
   * directory another process holds open, or one that cannot be created,
   * rejects with UNAVAILABLE naming MAXINE_DATA_DIR.
   */
  static async open(opts: LevelConfigOptions): Promise<LevelConfigStore> {
    const path = join(opts.dir, "config");
    let db: ClassicLevel<string, string>;
    try {
      mkdirSync(opts.dir, { recursive: true });
      db = new ClassicLevel<string, string>(path, { keyEncoding: "utf8", valueEncoding: "utf8" });
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code ?? "error";
      const why = cause === "LEVEL_LOCKED" ? "is in use by another process (one Maxine server per data directory)" : `cannot be opened (${cause})`;
      throw new RegistryError(Reason.UNAVAILABLE, `configuration store: ${path} ${why}; set MAXINE_DATA_DIR`);
    }
    let registryId = await db.get(META_ID);
    if (registryId === undefined) {
      registryId = randomUUID();
      await db.put(META_ID, registryId, { sync: true });
    }
    const changes: ConfigChange[] = [];
    for await (const value of db.values({ gte: VERSION, lt: `${VERSION}\uffff` })) changes.push(changeOf(entryOf(value)));
    const store = new LevelConfigStore(db, opts.fsync, opts.limits, registryId);
    store.load(changes);
    return store;
  }

  protected async persist({ changes, dropped }: Commit): Promise<boolean> {
    const ops: Array<{ type: "put"; key: string; value: string } | { type: "del"; key: string }> = [];
    for (const c of changes) ops.push({ type: "put", key: recordKey(c.revision), value: recordOf(c.entry) });
    for (const e of dropped) ops.push({ type: "del", key: recordKey(e.revision) });
    ops.push({ type: "put", key: META_REVISION, value: String(changes[changes.length - 1]!.revision) });
    await this.db.batch(ops, { sync: this.fsync });
    return true;
  }

  override async close(): Promise<void> {
    await super.close();
    await this.db.close();
  }
}

/** recordKey orders records by revision: fixed-width decimal sorts as numbers do. */
function recordKey(revision: number): string {
  return VERSION + String(revision).padStart(16, "0");
}
