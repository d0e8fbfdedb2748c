import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { Strategy } from "../../sdks/typescript/src/gen/maxine/registry/v1/registry_pb.js";
import type { RegistryClient } from "./api.js";
import type { LiveFacts } from "./instance-table.js";

/** AUTO_LIMIT is the largest service whose facts are read again on their own (an event, a lapsed deadline); larger ones by the button. */
export const AUTO_LIMIT = 1000;
/** DEBOUNCE_MS groups the reads a burst of events asks for. */
const DEBOUNCE_MS = 500;
/** MIN_GAP_MS is the least time between two reads for lapsed deadlines. */
const MIN_GAP_MS = 2000;

/**
 * LiveFactsLoader holds what no stream carries of the selected service's
 * instances: reported load and lease deadline, which are not revisioned
 * (a heartbeat changes them with no event). It reads them with one Discover
 * with include_all (strategy RANDOM: it moves no round-robin position):
 * when the service is selected; after its events (grouped); and when a
 * shown deadline has passed, which is when a renewal is due to be seen.
 * Services of more than AUTO_LIMIT instances are read on request only.
 */
export class LiveFactsLoader {
  private facts = new Map<string, LiveFacts>();
  private service = "";
  private size = 0;
  private readAt = 0;
  private earliest = Infinity;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  /** error is the last read's failure, shown under the table ("" when it worked). */
  error = "";

  constructor(
    private readonly client: RegistryClient,
    private readonly namespace: () => string,
    /** sizeOf counts a service's live instances (read when deciding whether and what to ask). */
    private readonly sizeOf: (service: string) => number,
    private readonly changed: () => void,
  ) {}

  /** get is an instance's facts, if read. */
  readonly get = (id: string): LiveFacts | undefined => this.facts.get(id);

  /** select starts over for a service and reads its facts (on request only, for one of more than AUTO_LIMIT instances). */
  select(service: string): void {
    this.service = service;
    this.facts = new Map();
    this.earliest = Infinity;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.size = service === "" ? 0 : this.sizeOf(service);
    if (service !== "" && this.size <= AUTO_LIMIT) void this.read();
  }

  /** eventFor notes an event of a service: the selected one's facts are read again shortly. */
  eventFor(service: string): void {
    if (service !== this.service || this.timer !== undefined || this.size > AUTO_LIMIT) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.read();
    }, DEBOUNCE_MS);
  }

  /** tick reads again when a shown deadline has passed (called every second). */
  tick(now: number): void {
    if (this.service === "" || this.size > AUTO_LIMIT) return;
    if (now >= this.earliest && now - this.readAt >= MIN_GAP_MS) void this.read();
  }

  /** read asks now (the Refresh button); a read in flight is not repeated. */
  read(): Promise<void> {
    this.running ??= this.load().finally(() => (this.running = undefined));
    return this.running;
  }

  private async load(): Promise<void> {
    const service = this.service;
    this.size = service === "" ? 0 : this.sizeOf(service);
    if (this.size === 0) {
      // nothing to ask about (Discover would answer NOT_FOUND)
      this.facts = new Map();
      this.earliest = Infinity;
      return;
    }
    this.readAt = Date.now();
    try {
      const res = await this.client.discover({ namespace: this.namespace(), service, includeAll: true, strategy: Strategy.RANDOM });
      if (service !== this.service) return;
      const next = new Map<string, LiveFacts>();
      let earliest = Infinity;
      for (const i of res.instances) {
        const lease = i.leaseExpiresAt === undefined ? undefined : timestampMs(i.leaseExpiresAt);
        if (lease !== undefined && lease < earliest) earliest = lease;
        next.set(i.instanceId, { load: i.reportedLoad, leaseExpiresAt: lease });
      }
      this.facts = next;
      this.earliest = earliest;
      this.error = "";
    } catch (err) {
      // NOT_FOUND: the service has no instance left; anything else is shown
      const e = ConnectError.from(err);
      this.facts = new Map();
      this.earliest = Infinity;
      this.error = e.code === Code.NotFound ? "" : `load and lease: ${e.message}`;
    }
    this.changed();
  }

  /** close stops a pending read. */
  close(): void {
    clearTimeout(this.timer);
    this.service = "";
  }
}
