import { collectDefaultMetrics, Counter, Gauge, Registry as MetricsRegistry } from "prom-client";
import type { Registry } from "../registry/registry.js";
import type { WatchHub } from "../watch/hub.js";

/**
 * Metrics is the server's Prometheus registry, served at GET /metrics: the
 * Node.js process metrics of prom-client (heap, GC, event-loop lag, CPU,
 * handles) and the registry's own gauges, read when scraped so that the
 * hot paths pay nothing for them.
 */
export class Metrics {
  readonly registry = new MetricsRegistry();

  constructor(core: Registry, hub: WatchHub) {
    collectDefaultMetrics({ register: this.registry, prefix: "maxine_" });
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.set(read());
        },
      });
    };
    const counter = (name: string, help: string, read: () => number): void => {
      let reported = 0;
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          const now = read();
          this.inc(now - reported);
          reported = now;
        },
      });
    };
    const c = core.counts;
    counter("maxine_register_total", "Register calls.", () => c.registers);
    counter("maxine_deregister_total", "Deregister calls.", () => c.deregisters);
    counter("maxine_discover_total", "Discover calls.", () => c.discovers);
    counter("maxine_heartbeat_streams_opened_total", "Heartbeat streams opened.", () => c.heartbeatStreamsOpened);
    counter("maxine_heartbeat_messages_total", "Heartbeat request messages answered.", () => c.heartbeatMessages);
    counter("maxine_beats_renewed_total", "Beats that renewed a lease.", () => c.beatsRenewed);
    counter("maxine_beats_unknown_total", "Beats for an instance the registry does not hold (the client registers it again).", () => c.beatsUnknown);
    counter("maxine_beats_registered_total", "Beats that registered their instance again from the instance they carried (a stream's first beat after a restart).", () => c.beatsRegistered);
    counter("maxine_watchers_opened_total", "WatchServices streams opened.", () => hub.opened);
    counter("maxine_watch_overflows_total", "Watchers that fell MAXINE_WATCH_QUEUE messages behind (reset to a snapshot or closed, by MAXINE_WATCH_OVERFLOW).", () => hub.overflows);
    gauge("maxine_revision", "The registry's current revision.", () => core.store.revision());
    gauge("maxine_heartbeat_streams", "Open Heartbeat streams.", () => core.openStreams);
    gauge("maxine_watchers", "Open WatchServices streams.", () => hub.watchers);
    gauge("maxine_instances", "Registered instances, all namespaces (counted when scraped).", () => {
      let n = 0;
      for (const ns of core.store.namespaces()) for (const [, view] of core.store.services(ns)) n += view.size;
      return n;
    });
  }

  /** render returns the exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
