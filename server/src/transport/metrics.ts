import { collectDefaultMetrics, Gauge, Registry as MetricsRegistry } from "prom-client";
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
