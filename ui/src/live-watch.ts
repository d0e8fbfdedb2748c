import { Code, ConnectError } from "@connectrpc/connect";
import { ResetReason, type Instance } from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";
import type { RegistryClient } from "./api.js";
import type { FeedEntry, NamespaceView } from "./namespace-view.js";

/** LinkState is how the page's watch stream is: opening, live, reconnecting after a drop, or waiting for a token. */
export type LinkState = "connecting" | "live" | "reconnecting" | "unauthenticated" | "denied";

/** LiveWatchListener hears what the stream does to the view. */
export interface LiveWatchListener {
  /** link reports the stream's state, with the server's message for a failure. */
  link(state: LinkState, detail: string): void;
  /** snapshot reports a snapshot installed in the view; previousRegistry is the registry the view held before ("" at first). */
  snapshot(reset: boolean, reason: ResetReason, previousRegistry: string): void;
  /** event reports one event applied to the view. */
  event(entry: FeedEntry): void;
  /** progress reports a bookmark: the view is up to date at view.revision. */
  progress(): void;
}

/** BACKOFF_MS bound the wait between reconnects: it doubles from the first to the last. */
const BACKOFF_MS = [200, 2000] as const;

/**
 * LiveWatch keeps a NamespaceView with one namespace-wide WatchServices
 * stream. When the stream drops it reconnects, with a growing backoff,
 * resuming from the view's revision and registry: the server replays just
 * the missed events, or sends a reset snapshot when it cannot (another
 * registry: a restarted in-memory server; or a compacted history).
 * UNAUTHENTICATED and PERMISSION_DENIED wait for retry() (a new token).
 */
export class LiveWatch {
  private readonly abort = new AbortController();
  private wake: (() => void) | undefined;

  constructor(
    private readonly client: RegistryClient,
    readonly view: NamespaceView,
    private readonly listener: LiveWatchListener,
  ) {}

  /** start opens the stream (once). */
  start(): void {
    void this.run(this.abort.signal);
  }

  /** stop ends the stream for good (the namespace changed, or the page goes). */
  stop(): void {
    this.abort.abort();
    this.wake?.();
  }

  /** retry reconnects now (a token was given, or the person asked). */
  retry(): void {
    this.wake?.();
  }

  private async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    this.listener.link("connecting", "");
    while (!signal.aborted) {
      const view = this.view;
      const resume = view.synced ? view.revision : 0n;
      let waitForRetry = false;
      try {
        let pending: Instance[] = [];
        const stream = this.client.watchServices(
          { namespace: view.namespace, resumeRevision: resume, registryId: resume > 0n ? view.registryId : "" },
          {
            signal,
            onHeader: () => {
              attempt = 0;
              this.listener.link("live", "");
            },
          },
        );
        for await (const msg of stream) {
          const m = msg.message;
          if (m.case === "snapshot") {
            for (const inst of m.value.instances) pending.push(inst);
          } else if (m.case === "snapshotEnd") {
            const previous = view.registryId;
            view.replace(pending, m.value, Date.now());
            pending = [];
            this.listener.snapshot(m.value.reset, m.value.reason, previous);
          } else if (m.case === "event") {
            const entry = view.apply(m.value, Date.now());
            if (entry !== undefined) this.listener.event(entry);
          } else if (m.case === "progress") {
            view.revision = m.value.revision;
            this.listener.progress();
          }
        }
        if (signal.aborted) return;
        this.listener.link("reconnecting", "the server ended the stream");
      } catch (err) {
        if (signal.aborted) return;
        const e = ConnectError.from(err);
        if (e.code === Code.Unauthenticated || e.code === Code.PermissionDenied) {
          this.listener.link(e.code === Code.Unauthenticated ? "unauthenticated" : "denied", e.rawMessage);
          waitForRetry = true;
        } else {
          this.listener.link("reconnecting", e.rawMessage);
        }
      }
      const delay = waitForRetry ? Infinity : Math.min(BACKOFF_MS[1], BACKOFF_MS[0] * 2 ** attempt++);
      await new Promise<void>((resolve) => {
        const timer = delay === Infinity ? undefined : setTimeout(resolve, delay);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}
