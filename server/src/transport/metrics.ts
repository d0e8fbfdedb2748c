import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as MetricsRegistry } from "prom-client";
import type { Interceptor } from "../rpc/context.js";
import { CODE_NAMES, codeOf } from "../rpc/interceptors.js";
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

  private readonly requests = new Counter({
    name: "maxine_rpc_requests_total",
    help: "Calls ended, by method, protocol (grpc, grpc-web, connect) and code (ok, invalid_argument, ...).",
    labelNames: ["method", "protocol", "code"] as const,
    registers: [this.registry],
  });

  private readonly durations = new Histogram({
    name: "maxine_rpc_duration_seconds",
    help: "How long calls took, by method and protocol: a unary call until its answer, a stream until it ended.",
    labelNames: ["method", "protocol"] as const,
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 600],
    registers: [this.registry],
  });

  /**
   * interceptor counts and times every call by method, protocol and code.
   * Label children are looked up once per combination, so a call pays two
   * map lookups, an increment and an observation.
   */
  interceptor(methods: Iterable<{ readonly info: { readonly name: string } }> = []): Interceptor {
    const counters = new Map<string, ReturnType<Counter<"method" | "protocol" | "code">["labels"]>>();
    const timers = new Map<string, ReturnType<Histogram<"method" | "protocol">["labels"]>>();
    // Every method's ok counters exist from the start (at 0), so a scrape
    // tells "no call" from "no such metric".
    for (const m of methods) for (const protocol of ["grpc", "grpc-web", "connect"]) this.requests.labels(m.info.name, protocol, "ok").inc(0);
    const done = (method: string, protocol: string, t0: number, err: unknown): void => {
      const code = CODE_NAMES[codeOf(err)] ?? "unknown";
      const key = `${method} ${protocol} ${code}`;
      let c = counters.get(key);
      if (c === undefined) counters.set(key, (c = this.requests.labels(method, protocol, code)));
      c.inc();
      const tkey = `${method} ${protocol}`;
      let h = timers.get(tkey);
      if (h === undefined) timers.set(tkey, (h = this.durations.labels(method, protocol)));
      h.observe((performance.now() - t0) / 1000);
    };
    return (next) => (ctx) => {
      const t0 = performance.now();
      return next(ctx).then(
        (v) => {
          done(ctx.method.name, ctx.protocol, t0, undefined);
          return v;
        },
        (err: unknown) => {
          done(ctx.method.name, ctx.protocol, t0, err);
          throw err;
        },
      );
    };
  }

  /** render returns the exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
