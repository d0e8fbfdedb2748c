import { deserialize } from "node:v8";
import type { ConfigChange, ConfigEntry, ConfigLimits, ConfigWrite } from "../domain/config-entry.js";
import { Reason, RegistryError } from "../domain/errors.js";
import { changeOf, ConfigView, ConfigViewReads, type ConfigStore } from "../store/config-store.js";
import type { Reply } from "./messages.js";
import { replyError, synced, type PrimaryLink } from "./primary-store.js";
import type { ConfigSnapshotData } from "./registry-authority.js";

/** APPLIED_KEPT is how many recent configuration changes a worker keeps by revision, for the answers to its own writes. */
const APPLIED_KEPT = 1024;

/**
 * PrimaryConfigStore is a worker's ConfigStore when the primary opens the
 * configuration store (MAXINE_STORE=memory with MAXINE_WORKERS > 1: one
 * process may open a MAXINE_DATA_DIR). Reads come from a ConfigView that
 * applies the primary's feed; a write is forwarded, planned and committed
 * by the primary's store in one order with every worker's, and resolves
 * once this worker's view has its change.
 */
export class PrimaryConfigStore extends ConfigViewReads implements ConfigStore {
  registryId = "";
  protected readonly view: ConfigView;
  private readonly listeners = new Set<(change: ConfigChange) => void>();
  private readonly applied = new Map<number, ConfigChange>();
  private readonly waiting = new Map<number, (reply: Reply) => void>();
  private nextId = 1;
  private closed = false;
  private readonly unlisten: () => void;
  private synced: ((error?: string) => void) | undefined;

  private constructor(
    private readonly link: PrimaryLink,
    limits: ConfigLimits,
  ) {
    super();
    this.view = new ConfigView(limits);
    this.unlisten = link.listen((m) => {
      if (m.maxine === "config-snapshot") this.snapshot(m.registryId, m.data, m.error);
      else if (m.maxine === "config-feed") this.feed(m.data, m.replies);
    });
  }

  /** connect asks the primary to open the store (if it has not) and resolves once this worker's view holds it; it rejects with why it could not open. */
  static async connect(link: PrimaryLink, limits: ConfigLimits, timeoutMs = 30_000): Promise<PrimaryConfigStore> {
    const store = new PrimaryConfigStore(link, limits);
    await synced(
      store,
      (done) => {
        store.synced = done;
        link.send({ maxine: "config-sync" });
      },
      timeoutMs,
      `config store: the primary did not open it within ${timeoutMs} ms`,
    );
    return store;
  }

  async write(write: ConfigWrite): Promise<ConfigChange> {
    if (this.closed) throw new Error("config store closed");
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve) => {
      this.waiting.set(id, resolve);
      this.link.send({ maxine: "config-write", id, write });
    });
    if (reply.error !== undefined) throw replyError(reply.error);
    const change = this.applied.get(reply.revision ?? 0);
    if (change === undefined) throw new RegistryError(Reason.UNAVAILABLE, `config store: the primary answered with revision ${reply.revision}, which this worker has not applied; retry`);
    return change;
  }

  subscribe(listener: (change: ConfigChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    for (const w of this.waiting.values()) w({ id: 0, error: { reason: Reason.SHUTTING_DOWN, message: "server: shutting down, retry on another server" } });
    this.waiting.clear();
    this.listeners.clear();
  }

  private snapshot(registryId: string | undefined, data: Uint8Array | undefined, error: string | undefined): void {
    const synced = this.synced;
    if (synced === undefined) return;
    this.synced = undefined;
    if (error !== undefined || data === undefined || registryId === undefined) return synced(error ?? "config store: the primary sent no snapshot");
    const snap = deserialize(data) as ConfigSnapshotData;
    // every kept version, oldest first, builds the view the primary's store has
    for (const e of [...snap.entries].sort((a, b) => a.revision - b.revision)) this.view.apply(changeOf(e));
    this.registryId = registryId;
    synced();
  }

  private feed(data: Uint8Array | undefined, replies: readonly Reply[] | undefined): void {
    if (data !== undefined && this.synced === undefined) {
      for (const c of deserialize(data) as ConfigChange[]) {
        if (c.revision <= this.view.revision()) continue;
        this.view.apply(c);
        this.applied.set(c.revision, c);
        this.applied.delete(c.revision - APPLIED_KEPT);
        for (const l of this.listeners) l(c);
      }
    }
    for (const reply of replies ?? []) {
      const w = this.waiting.get(reply.id);
      if (w === undefined) continue;
      this.waiting.delete(reply.id);
      w(reply);
    }
  }
}
