import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry as MetricsRegistry } from "prom-client";
import type { CheckObserver, ProbeResult } from "../checks/checker.js";
import type { CheckKind } from "../domain/health.js";
import type { Interceptor, MethodInfo, Protocol } from "../rpc/context.js";
import { CODE_NAMES, codeOf } from "../rpc/interceptors.js";
import type { Registry } from "../registry/registry.js";
import type { WatchHub } from "../watch/hub.js";
import type { WatchBudget } from "../rpc/watch-budget.js";

/**
 * Metrics is the server's Prometheus registry, served at GET /metrics: the
 * Node.js process metrics of prom-client (heap, GC, event-loop lag, CPU,
 * handles) and the registry's own gauges, read when scraped so that the
 * hot paths pay nothing for them.
 */
export class Metrics {
  readonly registry = new MetricsRegistry();

  constructor(core: Registry, hub: WatchHub, watchBudget?: WatchBudget) {
    collectDefaultMetrics({ register: this.registry, prefix: "maxine_" });
    const gauge = (name: string, help: string, read: () => number, aggregator?: Aggregator): void => this.gauge(name, help, read, aggregator);
    const counter = (name: string, help: string, read: () => number): void => this.counter(name, help, read);
    const c = core.counts;
    counter("maxine_heartbeat_streams_opened_total", "Heartbeat streams opened.", () => c.heartbeatStreamsOpened);
    counter("maxine_heartbeat_messages_total", "Heartbeat request messages answered.", () => c.heartbeatMessages);
    counter("maxine_beats_renewed_total", "Beats that renewed a lease.", () => c.beatsRenewed);
    counter("maxine_beats_unknown_total", "Beats for an instance the registry does not hold (the client registers it again).", () => c.beatsUnknown);
    counter("maxine_beats_registered_total", "Beats that registered their instance again from the instance they carried (a stream's first beat after a restart).", () => c.beatsRegistered);
    counter("maxine_watchers_opened_total", "WatchServices streams opened.", () => hub.opened);
    counter("maxine_watch_snapshot_instances_total", "Instances sent in watch snapshots, whole or differential.", () => hub.snapshotInstances);
    counter("maxine_watch_snapshot_kept_total", "Instances a resuming watcher held that its differential snapshot did not send again (WatchServicesRequest.held).", () => hub.snapshotKept);
    counter("maxine_watch_overflows_total", "Watchers that fell more than MAXINE_WATCH_QUEUE changes behind, or behind the watch history (reset to a snapshot or closed, by MAXINE_WATCH_OVERFLOW).", () => hub.overflows);
    if (watchBudget !== undefined) {
      gauge("maxine_watch_buffered_bytes", "Bytes all watch streams hold unsent: answers written that their clients have not read (bounded by MAXINE_WATCH_MEMORY_BUDGET; measured when scraped).", () => watchBudget.buffered());
      counter("maxine_watch_budget_closes_total", "Watch streams closed (RESOURCE_EXHAUSTED, cut) because all watch streams together held more unsent bytes than MAXINE_WATCH_MEMORY_BUDGET.", () => watchBudget.closed);
    }
    // Every worker (MAXINE_WORKERS) holds the whole registry: its revision and instances are the most any reports, not their sum.
    gauge("maxine_revision", "The registry's current revision.", () => core.store.revision(), "max");
    gauge("maxine_heartbeat_streams", "Open Heartbeat streams.", () => core.openStreams);
    gauge("maxine_watchers", "Open WatchServices streams.", () => hub.watchers);
    gauge("maxine_instances", "Registered instances, all namespaces (counted when scraped).", () => {
      let n = 0;
      for (const ns of core.store.namespaces()) for (const [, view] of core.store.services(ns)) n += view.size;
      return n;
    }, "max");
  }

  private readonly calls = new CallStats();

  /** logOutput shows how many log lines the log destination dropped. */
  logOutput(dropped: () => number): void {
    this.counter(
      "maxine_log_dropped_lines_total",
      "Log lines dropped because stdout's reader fell MAXINE_LOG_BUFFER bytes behind.",
      dropped,
    );
  }

  /** connections shows the listener's own counters: the connections and streams it cut for what their clients did. */
  connections(listener: { readonly streamsReset: number; readonly silentPeers: number }): void {
    this.counter(
      "maxine_streams_reset_unread_total",
      "HTTP/2 streams reset because their connection left too many answer bytes unread (MAXINE_MAX_UNSENT_BYTES_PER_CONNECTION).",
      () => listener.streamsReset,
    );
    this.counter(
      "maxine_connections_silent_closed_total",
      "HTTP/2 connections closed because a PING went unacknowledged (MAXINE_KEEPALIVE_TIMEOUT): a stopped or hung peer, or a dead path.",
      () => listener.silentPeers,
    );
  }

  /**
   * checks makes the health checks' metrics: probes by kind and result
   * (maxine_check_probes_total), their durations
   * (maxine_check_probe_duration_seconds), how late each probe started
   * after it was due (maxine_check_schedule_slip_seconds), and, once
   * follow is called, the checks this server runs and the probes going now.
   */
  checks(): CheckObserver & { follow(checker: { readonly count: number; readonly running: number; readonly queued: number }): void } {
    const probes = new Counter({ name: "maxine_check_probes_total", help: "Health-check probes run by this server, by kind (http, tcp, grpc) and result (pass, fail, timeout).", labelNames: ["kind", "result"], registers: [this.registry] });
    const durations = new Histogram({
      name: "maxine_check_probe_duration_seconds",
      help: "How long health-check probes took, by kind (a timeout counts its timeout).",
      labelNames: ["kind"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    const slip = new Histogram({
      name: "maxine_check_schedule_slip_seconds",
      help: "How late health-check probes started after they were due (waiting for MAXINE_CHECK_CONCURRENCY, or a busy event loop).",
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    for (const kind of ["http", "tcp", "grpc"]) for (const result of ["pass", "fail", "timeout"]) probes.inc({ kind, result }, 0);
    const gauge = (name: string, help: string, read: () => number): void => this.gauge(name, help, read);
    return {
      probed(kind: CheckKind, result: ProbeResult, seconds: number) {
        const k = kind.toLowerCase();
        probes.inc({ kind: k, result });
        durations.observe({ kind: k }, seconds);
      },
      slipped(ms: number) {
        slip.observe(ms / 1000);
      },
      follow(checker) {
        gauge("maxine_checks", "Health checks this server runs (in Redis mode, those it owns).", () => checker.count);
        gauge("maxine_check_probes_running", "Health-check probes running now (at most MAXINE_CHECK_CONCURRENCY).", () => checker.running);
        gauge("maxine_check_probes_queued", "Health-check probes due and waiting for a slot (MAXINE_CHECK_CONCURRENCY).", () => checker.queued);
      },
    };
  }

  /**
   * xds shows the xDS control plane's metrics: open streams
   * (maxine_xds_streams), responses sent and responses the clients rejected
   * (NACK), by type (lds, rds, cds, eds).
   */
  xds(x: { readonly streams: number }, stats: { readonly pushes: Readonly<Record<string, number>>; readonly nacks: Readonly<Record<string, number>> }): void {
    this.gauge("maxine_xds_streams", "Open xDS streams (StreamAggregatedResources and DeltaAggregatedResources).", () => x.streams);
    this.byType("maxine_xds_pushes_total", "xDS responses sent, by resource type (lds, rds, cds, eds).", () => stats.pushes);
    this.byType("maxine_xds_nacks_total", "xDS responses the clients rejected (NACK: logged at warn with the client's error; one per response sent), by resource type.", () => stats.nacks);
  }

  /** byType shows counters kept per xDS type, read when scraped, labelled with the type's short name. */
  private byType(name: string, help: string, read: () => Readonly<Record<string, number>>): void {
    const short: Record<string, string> = { listener: "lds", route: "rds", cluster: "cds", endpoints: "eds" };
    const reported: Record<string, number> = {};
    new Counter({
      name,
      help,
      labelNames: ["type"],
      registers: [this.registry],
      collect() {
        for (const [type, now] of Object.entries(read())) {
          const label = short[type] ?? type;
          this.inc({ type: label }, now - (reported[type] ?? 0));
          reported[type] = now;
        }
      },
    });
  }

  /**
   * gauge shows a number read when scraped. aggregator says how the
   * workers' values add up into the server's (MAXINE_WORKERS; prom-client's
   * AggregatorRegistry): sum, as for the streams each holds, unless said.
   */
  private gauge(name: string, help: string, read: () => number, aggregator: Aggregator = "sum"): void {
    new Gauge({
      name,
      help,
      aggregator,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** counter shows a number that only grows, read when scraped. */
  private counter(name: string, help: string, read: () => number): void {
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
  }

  /**
   * interceptor counts and times every call by method, protocol and code.
   * A call adds to plain numbers kept per method and protocol (no
   * allocation, no label hashing); prom-client reads them when scraped
   * (maxine_rpc_requests_total, maxine_rpc_duration_seconds). Every
   * method's ok counters are shown from the start (at 0), so a scrape tells
   * "no call" from "no such metric".
   */
  interceptor(methods: Iterable<{ readonly info: MethodInfo }> = []): Interceptor {
    const calls = this.calls;
    for (const m of methods) calls.of(m.info);
    this.registry.registerMetric(calls.requestsMetric() as never);
    this.registry.registerMetric(calls.durationsMetric() as never);
    return {
      onEnd(ctx, err) {
        calls.record(ctx.method, ctx.protocol, codeOf(err), ctx.startedAt);
        return err;
      },
    };
  }

  /** render returns the exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Aggregator is how one metric of several workers becomes the server's. */
type Aggregator = "sum" | "max";

const PROTOCOLS: readonly Protocol[] = ["grpc", "grpc-web", "connect"];
/** BUCKETS are the upper bounds, in seconds, of maxine_rpc_duration_seconds. */
const BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60, 600];

/** MethodStats are one method's calls over one protocol. */
class MethodStats {
  /** codes counts calls by RPC code (0 is ok). */
  readonly codes = new Float64Array(CODE_NAMES.length);
  /** buckets counts calls by duration bucket; the last one is +Inf. */
  readonly buckets = new Float64Array(BUCKETS.length + 1);
  sum = 0;
  count = 0;
}

/**
 * CallStats keeps the per-method call counters and duration histogram as
 * plain numbers, and shows them to prom-client as two metrics (a counter
 * and a histogram, in the exposition format prom-client writes for its own).
 */
class CallStats {
  // Keyed by the method's name, the metrics' label: methods of the same
  // name in two services (reflection's v1 and v1alpha ServerReflectionInfo)
  // share one series, as a scrape must not hold the same labels twice.
  private readonly byMethod = new Map<string, MethodStats[]>();

  /** of returns method's stats, one per protocol, made on first use. */
  of(method: MethodInfo): MethodStats[] {
    let stats = this.byMethod.get(method.name);
    if (stats === undefined) this.byMethod.set(method.name, (stats = PROTOCOLS.map(() => new MethodStats())));
    return stats;
  }

  record(method: MethodInfo, protocol: Protocol, code: number, t0: number): void {
    const s = this.of(method)[protocol === "grpc" ? 0 : protocol === "grpc-web" ? 1 : 2]!;
    s.codes[code]!++;
    const seconds = (performance.now() - t0) / 1000;
    let b = 0;
    while (b < BUCKETS.length && seconds > BUCKETS[b]!) b++;
    s.buckets[b]!++;
    s.sum += seconds;
    s.count++;
  }

  private each(f: (method: string, protocol: Protocol, s: MethodStats) => void): void {
    for (const [name, stats] of this.byMethod) stats.forEach((s, i) => f(name, PROTOCOLS[i]!, s));
  }

  requestsMetric() {
    const name = "maxine_rpc_requests_total";
    const help = "Calls ended, by method, protocol (grpc, grpc-web, connect) and code (ok, invalid_argument, ...).";
    return {
      name,
      help,
      type: "counter",
      aggregator: "sum",
      get: async () => {
        const values: Array<{ labels: Record<string, string>; value: number }> = [];
        this.each((method, protocol, s) => {
          s.codes.forEach((n, code) => {
            if (n > 0 || code === 0) values.push({ labels: { method, protocol, code: CODE_NAMES[code]! }, value: n });
          });
        });
        return { name, help, type: "counter", values, aggregator: "sum" };
      },
      reset: () => {},
    };
  }

  durationsMetric() {
    const name = "maxine_rpc_duration_seconds";
    const help = "How long calls took, by method and protocol: a unary call until its answer, a stream until it ended.";
    return {
      name,
      help,
      type: "histogram",
      aggregator: "sum",
      get: async () => {
        const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
        this.each((method, protocol, s) => {
          if (s.count === 0) return;
          let cumulative = 0;
          s.buckets.forEach((n, b) => {
            cumulative += n;
            values.push({ metricName: `${name}_bucket`, labels: { method, protocol, le: b < BUCKETS.length ? BUCKETS[b]! : "+Inf" }, value: cumulative });
          });
          values.push({ metricName: `${name}_sum`, labels: { method, protocol }, value: s.sum });
          values.push({ metricName: `${name}_count`, labels: { method, protocol }, value: s.count });
        });
        return { name, help, type: "histogram", values, aggregator: "sum" };
      },
      reset: () => {},
    };
  }
}
