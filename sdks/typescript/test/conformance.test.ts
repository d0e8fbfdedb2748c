import type { ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  OperatorStatus,
  OperatorStatusSchema,
  RemovalReasonSchema,
  ServingStatusSchema,
  type Instance,
} from "../src/gen/maxine/registry/v1/registry_pb.js";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createMaxineTransport, type MaxineClient } from "../src/client.js";
import { createFailoverTransport } from "../src/failover.js";
import { RegistryService } from "../src/gen/maxine/registry/v1/registry_pb.js";
import type { WatchChange } from "../src/instance-view.js";
import { Session } from "../src/session.js";
import { Watcher } from "../src/watcher.js";
import { ConfigWatcher, type ConfigClient } from "../src/config-watcher.js";
import { ConfigService } from "../src/gen/maxine/config/v1/config_pb.js";
import { startServerProcess, type ServerProcess } from "../../../server/test/support/server-process.js";
import { startRedis, type RedisProcess } from "../../../server/test/support/redis-server.js";
import { spawnReady } from "./support/child.js";
import { Scope } from "./support/scope.js";
import { ownedClient, requireBuilt, TEST_SERVER_ENV } from "./support/sdk-server.js";
import { delay, freePort, waitFor } from "./support/wait.js";

// The TypeScript runner of the SDK conformance scenarios
// (testdata/conformance/*.json, described in its README.md): each scenario
// is a test, driving this SDK's Session and Watcher against the real server.
// The Go and Python runners read the same files and must agree.

const DIR = fileURLToPath(new URL("../../../testdata/conformance/", import.meta.url));
const CHILD = fileURLToPath(new URL("./fixtures/register-child.mjs", import.meta.url));
const BACKOFF = { baseMs: 50, maxMs: 250 };

type Step = Record<string, unknown> & { readonly do: string };
interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly env?: Record<string, string>;
  readonly steps: readonly Step[];
}
interface Recorded {
  readonly change: WatchChange;
  readonly registryId: string;
  readonly at: number;
}
interface WatchRecord {
  readonly watcher: Watcher;
  readonly changes: Recorded[];
  cursor: number;
  violation?: string;
}
/** ConfigRecord is one recorded state of a config watcher: a value, or a delete (value null). */
interface ConfigRecord {
  readonly value: unknown;
  readonly version: number;
  readonly source: string;
  readonly deleted: boolean;
}
interface ConfigWatchRecord {
  readonly watcher: ConfigWatcher<unknown>;
  readonly records: ConfigRecord[];
  cursor: number;
}
interface ServerSlot {
  proc: ServerProcess | undefined;
  readonly port: number;
  readonly env: Record<string, string>;
}

const enumName = (schema: { values: readonly { number: number; name: string }[] }, n: number): string =>
  schema.values.find((v) => v.number === n)?.name ?? String(n);
const enumValue = (schema: { values: readonly { number: number; name: string }[] }, name: string): number => {
  const v = schema.values.find((x) => x.name === name);
  if (v === undefined) throw new Error(`unknown enum value ${name}`);
  return v.number;
};

/** FIELDS lists, per step kind, the fields it takes: a kind or a field not listed fails the scenario. */
const FIELDS: Record<string, readonly string[]> = {
  start_redis: [],
  start_server: ["server", "store"],
  stop_server: ["server"],
  kill_server: ["server"],
  restart_server: ["server"],
  register: ["server", "service", "instance", "port", "ttl_ms"],
  deregister: ["server", "service", "instance"],
  set_operator_status: ["server", "service", "instance", "status"],
  open_session: ["session", "servers"],
  session_register: ["session", "service", "instance", "port", "ttl_ms"],
  close_session: ["session"],
  spawn_session: ["process", "server", "service", "instance", "ttl_ms"],
  kill_process: ["process"],
  watch: ["watcher", "servers", "services"],
  expect_events: ["watcher", "events", "within_ms", "not_before_ms", "any_order", "from_snapshot"],
  expect_no_events: ["watcher", "for_ms"],
  skip_events: ["watcher"],
  expect_view: ["watcher", "instances", "within_ms", "server"],
  expect_discover: ["server", "service", "instances", "within_ms"],
  put_config: ["server", "service", "key", "value", "raw"],
  delete_config: ["server", "service", "key"],
  watch_config: ["watcher", "servers", "service", "key", "cache"],
  expect_config: ["watcher", "values", "within_ms"],
  close_config_watcher: ["watcher"],
};
const EXPECTED_CONFIG_FIELDS = ["value", "version", "source", "deleted"];
const EXPECTED_FIELDS = ["type", "service", "instance", "status", "operator_status", "removal_reason"];

/** describeChange is how runners print a change: the fields a scenario may expect. */
function describeChange(c: WatchChange): Record<string, string> {
  return {
    type: c.type,
    ...describeInstance(c.instance),
    removal_reason: enumName(RemovalReasonSchema, c.removalReason),
  };
}

function describeInstance(i: Instance): Record<string, string> {
  return {
    service: i.service,
    instance: i.instanceId,
    status: enumName(ServingStatusSchema, i.status),
    operator_status: enumName(OperatorStatusSchema, i.operatorStatus),
  };
}

/** matches compares what a scenario expects (only the fields it names) with what happened. */
function matches(expected: Record<string, unknown>, actual: Record<string, string>): boolean {
  for (const k of Object.keys(expected)) {
    if (!EXPECTED_FIELDS.includes(k)) throw new Error(`unknown expected field ${JSON.stringify(k)}`);
  }
  return Object.entries(expected).every(([k, v]) => actual[k] === v);
}

class Runner {
  private readonly scope: Scope;
  private readonly servers = new Map<string, ServerSlot>();
  private readonly sessions = new Map<string, Session>();
  private readonly watchers = new Map<string, WatchRecord>();
  private readonly processes = new Map<string, ChildProcess>();
  private readonly configWatchers = new Map<string, ConfigWatchRecord>();
  private redis: RedisProcess | undefined;
  private dataDir: string | undefined;
  private lastStepEnd = performance.now();

  constructor(
    private readonly scenario: Scenario,
    scope: Scope,
  ) {
    this.scope = scope;
  }

  async run(): Promise<void> {
    for (const [i, step] of this.scenario.steps.entries()) {
      const where = `${this.scenario.name} step ${i + 1} (${step.do})`;
      const fields = FIELDS[step.do];
      if (fields === undefined) throw new Error(`${where}: unknown step kind ${JSON.stringify(step.do)}`);
      const unknown = Object.keys(step).filter((k) => k !== "do" && !fields.includes(k));
      if (unknown.length > 0) throw new Error(`${where}: unknown field(s) ${unknown.join(", ")}`);
      try {
        await this.step(step);
      } catch (err) {
        throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
      }
      this.lastStepEnd = performance.now();
    }
  }

  private async step(s: Step): Promise<void> {
    switch (s.do) {
      case "start_redis":
        if (this.redis !== undefined) throw new Error("one Redis per scenario");
        this.redis = this.scope.defer(await startRedis(), (r) => r.close());
        return;
      case "start_server": {
        const name = str(s, "server");
        if (this.servers.has(name)) throw new Error(`server ${name} exists`);
        const env: Record<string, string> = { ...TEST_SERVER_ENV, ...this.scenario.env };
        const store = (s.store as string | undefined) ?? "memory";
        if (store === "redis") {
          if (this.redis === undefined) throw new Error("store redis needs a start_redis step first");
          Object.assign(env, { MAXINE_STORE: "redis", MAXINE_REDIS_URL: this.redis.url });
        } else if (store !== "memory") throw new Error(`store: "memory" or "redis", got ${store}`);
        // each server keeps its service configuration in a directory of the scenario's own (kept across a restart)
        env.MAXINE_DATA_DIR = join(this.scenarioDir(), `server-${name}`);
        const slot: ServerSlot = { proc: undefined, port: await freePort(), env };
        this.servers.set(name, slot);
        this.scope.defer(slot, (x) => x.proc?.kill());
        await this.startServer(slot);
        return;
      }
      case "stop_server": {
        const slot = this.server(str(s, "server"));
        const code = await slot.proc!.stop();
        slot.proc = undefined;
        if (code !== 0) throw new Error(`the server exited with ${code} on SIGTERM`);
        return;
      }
      case "kill_server": {
        const slot = this.server(str(s, "server"));
        await slot.proc!.kill();
        slot.proc = undefined;
        return;
      }
      case "restart_server": {
        const slot = this.servers.get(str(s, "server"));
        if (slot === undefined || slot.proc !== undefined) throw new Error(`server ${String(s.server)} is not stopped`);
        await this.startServer(slot);
        return;
      }
      case "register":
        await this.unary(str(s, "server")).register({
          instance: { service: str(s, "service"), instanceId: str(s, "instance"), host: "127.0.0.1", port: num(s, "port") },
          leaseTtl: s.ttl_ms === undefined ? undefined : durationFromMs(num(s, "ttl_ms")),
        });
        return;
      case "deregister":
        await this.unary(str(s, "server")).deregister({ key: { service: str(s, "service"), instanceId: str(s, "instance") } });
        return;
      case "set_operator_status":
        await this.unary(str(s, "server")).setOperatorStatus({
          key: { service: str(s, "service"), instanceId: str(s, "instance") },
          status: enumValue(OperatorStatusSchema, str(s, "status")) as OperatorStatus,
        });
        return;
      case "open_session": {
        const name = str(s, "session");
        const session = new Session(this.clientOf(strs(s, "servers")), { backoff: BACKOFF });
        this.sessions.set(name, this.scope.defer(session, (x) => x.close()));
        return;
      }
      case "session_register":
        await this.session(str(s, "session")).register(
          { service: str(s, "service"), instanceId: str(s, "instance"), host: "127.0.0.1", port: num(s, "port") },
          { ttlMs: num(s, "ttl_ms") },
        );
        return;
      case "close_session":
        await this.session(str(s, "session")).close();
        return;
      case "spawn_session":
        await this.spawnSession(s);
        return;
      case "kill_process": {
        const child = this.processes.get(str(s, "process"));
        if (child === undefined) throw new Error(`no process ${String(s.process)}`);
        process.kill(child.pid!, "SIGKILL");
        await once(child, "exit");
        return;
      }
      case "watch": {
        const name = str(s, "watcher");
        // The aligned lifecycle: create (not started), subscribe, start, wait for the first snapshot with a bound.
        const watcher = new Watcher(this.clientOf(strs(s, "servers")), { services: strs(s, "services"), backoff: BACKOFF, start: false });
        this.scope.defer(watcher, (w) => w.close());
        const rec: WatchRecord = { watcher, changes: [], cursor: 0 };
        watcher.on("change", (change) => {
          const last = rec.changes.at(-1);
          if (last !== undefined && last.registryId === watcher.registryId && change.revision < last.change.revision) {
            rec.violation ??= `revision went down within registry ${watcher.registryId}: ${last.change.revision} then ${change.revision}`;
          }
          rec.changes.push({ change, registryId: watcher.registryId, at: performance.now() });
        });
        this.watchers.set(name, rec);
        await watcher.start().ready(10_000);
        return;
      }
      case "expect_events":
        await this.expectEvents(s);
        return;
      case "expect_no_events": {
        const rec = this.watch(str(s, "watcher"));
        const before = rec.changes.length;
        await delay(num(s, "for_ms")); // proves that nothing happens within the time: a sleep by design
        const extra = rec.changes.slice(before).map((r) => describeChange(r.change));
        if (extra.length > 0) throw new Error(`changes within ${String(s.for_ms)} ms: ${JSON.stringify(extra)}`);
        this.checkRevisions(rec);
        return;
      }
      case "skip_events": {
        const rec = this.watch(str(s, "watcher"));
        rec.cursor = rec.changes.length;
        return;
      }
      case "expect_view": {
        const rec = this.watch(str(s, "watcher"));
        const expected = list(s, "instances");
        const view = (): Record<string, string>[] => rec.watcher.instances().map(describeInstance);
        const ok = (): boolean => view().length === expected.length && expected.every((e, i) => matches(e, view()[i]!));
        const within = num(s, "within_ms");
        if (s.server !== undefined) {
          // the view must come from the server's registry, not be one held from before a restart
          const unary = this.unary(str(s, "server"));
          if (expected.length === 0) throw new Error("server: needs instances (their service's Discover names the registry)");
          const service = String(expected[0]!.service);
          let registry = "";
          await waitForAsync(
            async () => {
              registry = (await unary.discover({ service, includeAll: true })).registryId;
              return rec.watcher.registryId === registry && ok();
            },
            within,
            () => `the view ${JSON.stringify(view())} of registry ${rec.watcher.registryId}, want ${JSON.stringify(expected)} of ${registry}`,
          );
        }
        await waitOr(ok, within, () => `the view ${JSON.stringify(view())}, want ${JSON.stringify(expected)}`);
        this.checkRevisions(rec);
        return;
      }
      case "expect_discover": {
        const unary = this.unary(str(s, "server"));
        const want = strs(s, "instances");
        let got: string[] = [];
        await waitForAsync(
          async () => {
            const d = await unary.discover({ service: str(s, "service"), includeAll: true });
            got = d.instances.map((i) => i.instanceId);
            return JSON.stringify(got) === JSON.stringify(want);
          },
          num(s, "within_ms"),
          () => `Discover lists ${JSON.stringify(got)}, want ${JSON.stringify(want)}`,
        );
        return;
      }
      case "put_config": {
        if ((s.value === undefined) === (s.raw === undefined)) throw new Error("put_config: give value (JSON) or raw (text), one of them");
        const value = new TextEncoder().encode(s.raw !== undefined ? str(s, "raw") : JSON.stringify(s.value));
        await this.configClientOf([str(s, "server")]).put({ service: str(s, "service"), key: str(s, "key"), value, contentType: "application/json" });
        return;
      }
      case "delete_config":
        await this.configClientOf([str(s, "server")]).delete({ service: str(s, "service"), key: str(s, "key") });
        return;
      case "watch_config": {
        const name = str(s, "watcher");
        const cacheFile = s.cache === undefined ? undefined : join(this.scenarioDir(), "cache", `${str(s, "cache")}.json`);
        const watcher = new ConfigWatcher<unknown>(this.configClientOf(strs(s, "servers")), {
          service: str(s, "service"),
          key: str(s, "key"),
          backoff: BACKOFF,
          start: false,
          ...(cacheFile !== undefined ? { cacheFile } : {}),
        });
        this.scope.defer(watcher, (w) => w.close());
        const rec: ConfigWatchRecord = { watcher, records: [], cursor: 0 };
        watcher.on("change", (v) => rec.records.push({ value: v.value, version: Number(v.version), source: v.source, deleted: false }));
        watcher.on("deleted", (version) => rec.records.push({ value: null, version: Number(version), source: "registry", deleted: true }));
        this.configWatchers.set(name, rec);
        await watcher.start().ready(10_000);
        // a value the watcher started with (its cache file) is its first record
        const current = watcher.current;
        if (rec.records.length === 0 && current !== undefined) rec.records.push({ value: current.value, version: Number(current.version), source: current.source, deleted: false });
        return;
      }
      case "expect_config": {
        const rec = this.configWatcher(str(s, "watcher"));
        const expected = list(s, "values");
        for (const e of expected) for (const k of Object.keys(e)) if (!EXPECTED_CONFIG_FIELDS.includes(k)) throw new Error(`unknown expected field ${JSON.stringify(k)}`);
        const start = rec.cursor;
        await waitOr(() => rec.records.length - start >= expected.length, num(s, "within_ms"), () =>
          `${rec.records.length - start} of ${expected.length} values: ${JSON.stringify(rec.records.slice(start))}, want ${JSON.stringify(expected)}`,
        );
        const got = rec.records.slice(start, start + expected.length);
        const ok = expected.every((e, i) => Object.entries(e).every(([k, v]) => JSON.stringify(got[i]![k as keyof ConfigRecord]) === JSON.stringify(v)));
        if (!ok) throw new Error(`values ${JSON.stringify(got)}, want ${JSON.stringify(expected)}`);
        rec.cursor = start + expected.length;
        return;
      }
      case "close_config_watcher":
        await this.configWatcher(str(s, "watcher")).watcher.close();
        return;
      default:
        throw new Error(`unknown step kind ${JSON.stringify(s.do)}`);
    }
  }

  private scenarioDir(): string {
    if (this.dataDir === undefined) {
      const dir = mkdtempSync(join(tmpdir(), "maxine-conformance-"));
      this.dataDir = this.scope.defer(dir, (d) => rmSync(d, { recursive: true, force: true }));
    }
    return this.dataDir;
  }

  private configWatcher(name: string): ConfigWatchRecord {
    const w = this.configWatchers.get(name);
    if (w === undefined) throw new Error(`no config watcher ${name}`);
    return w;
  }

  /** configClientOf is a ConfigService client of those servers (several: the SDK's failover transport). */
  private configClientOf(names: readonly string[]): ConfigClient {
    const transports = names.map((n) => {
      const baseUrl = this.url(n);
      const connection = this.scope.defer(new Http2SessionManager(baseUrl), (c) => c.abort());
      return createMaxineTransport({ baseUrl, sessionManager: connection });
    });
    return createClient(ConfigService, transports.length === 1 ? transports[0]! : createFailoverTransport(transports));
  }

  private async expectEvents(s: Step): Promise<void> {
    const rec = this.watch(str(s, "watcher"));
    const expected = list(s, "events");
    const start = rec.cursor;
    await waitOr(() => rec.changes.length - start >= expected.length, num(s, "within_ms"), () =>
      `${rec.changes.length - start} of ${expected.length} changes: ${JSON.stringify(rec.changes.slice(start).map((r) => describeChange(r.change)))}, want ${JSON.stringify(expected)}`,
    );
    const got = rec.changes.slice(start, start + expected.length);
    const described = got.map((r) => describeChange(r.change));
    const ok = s.any_order === true
      ? expected.every((e) => described.some((d) => matches(e, d))) && described.every((d) => expected.some((e) => matches(e, d)))
      : expected.every((e, i) => matches(e, described[i]!));
    if (!ok) throw new Error(`changes ${JSON.stringify(described)}, want ${JSON.stringify(expected)}`);
    const revisions = got.map((r) => r.change.revision);
    const snapshot = s.from_snapshot === true;
    for (let i = 1; i < got.length; i++) {
      const [a, b] = [got[i - 1]!, got[i]!];
      if (snapshot ? b.change.revision !== a.change.revision || b.registryId !== a.registryId : b.registryId === a.registryId && b.change.revision <= a.change.revision) {
        throw new Error(`revisions ${revisions.join(", ")}: want ${snapshot ? "one snapshot's (all equal)" : "increasing"}`);
      }
    }
    if (s.not_before_ms !== undefined) {
      const after = got[0]!.at - this.lastStepEnd;
      if (after < num(s, "not_before_ms")) throw new Error(`the first change came ${Math.round(after)} ms after the previous step, want >= ${String(s.not_before_ms)} ms`);
    }
    rec.cursor = start + expected.length;
    this.checkRevisions(rec);
  }

  private checkRevisions(rec: WatchRecord): void {
    if (rec.violation !== undefined) throw new Error(rec.violation);
  }

  private async startServer(slot: ServerSlot): Promise<void> {
    slot.proc = await startServerProcess({ ...slot.env, MAXINE_PORT: String(slot.port) });
  }

  private server(name: string): ServerSlot {
    const slot = this.servers.get(name);
    if (slot?.proc === undefined) throw new Error(`server ${name} is not running`);
    return slot;
  }

  private url(name: string): string {
    const slot = this.servers.get(name);
    if (slot === undefined) throw new Error(`no server ${name}`);
    return `http://127.0.0.1:${slot.port}`;
  }

  /** clientOf is a client of those servers (several: the SDK's failover transport), on connections the scenario closes. */
  private clientOf(names: readonly string[]): MaxineClient {
    const urls = names.map((n) => this.url(n));
    if (urls.length === 1) return this.scope.defer(ownedClient(urls[0]!), (c) => c.connection.abort()).client;
    const transports = urls.map((baseUrl) => {
      const connection = this.scope.defer(new Http2SessionManager(baseUrl), (c) => c.abort());
      return createMaxineTransport({ baseUrl, sessionManager: connection });
    });
    return createClient(RegistryService, createFailoverTransport(transports));
  }

  private unary(name: string): MaxineClient {
    return this.clientOf([name]);
  }

  private session(name: string): Session {
    const s = this.sessions.get(name);
    if (s === undefined) throw new Error(`no session ${name}`);
    return s;
  }

  private watch(name: string): WatchRecord {
    const w = this.watchers.get(name);
    if (w === undefined) throw new Error(`no watcher ${name}`);
    return w;
  }

  private async spawnSession(s: Step): Promise<void> {
    const child = await spawnReady(this.scope, [CHILD, this.url(str(s, "server")), str(s, "service"), str(s, "instance"), String(num(s, "ttl_ms"))]);
    this.processes.set(str(s, "process"), child);
  }

}

function str(s: Step, k: string): string {
  const v = s[k];
  if (typeof v !== "string") throw new Error(`${k}: must be a string, got ${JSON.stringify(v)}`);
  return v;
}
function num(s: Step, k: string): number {
  const v = s[k];
  if (typeof v !== "number") throw new Error(`${k}: must be a number, got ${JSON.stringify(v)}`);
  return v;
}
function strs(s: Step, k: string): string[] {
  const v = s[k];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error(`${k}: must be a list of strings`);
  return v as string[];
}
function list(s: Step, k: string): Record<string, unknown>[] {
  const v = s[k];
  if (!Array.isArray(v)) throw new Error(`${k}: must be a list`);
  return v as Record<string, unknown>[];
}

async function waitOr(cond: () => boolean, ms: number, what: () => string): Promise<void> {
  try {
    await waitFor(cond, "", ms);
  } catch {
    throw new Error(`within ${ms} ms: ${what()}`);
  }
}

async function waitForAsync(cond: () => Promise<boolean>, ms: number, what: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`within ${ms} ms: ${what()}`);
    await delay(20);
  }
}

const scenarios: Scenario[] = readdirSync(DIR)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => {
    const sc = JSON.parse(readFileSync(DIR + f, "utf8")) as Scenario;
    if (`${sc.name}.json` !== f) throw new Error(`${f}: name must be ${f.slice(0, -5)}, got ${sc.name}`);
    return sc;
  });

const scope = new Scope();
afterEach(() => scope.close());

describe("SDK conformance (testdata/conformance)", () => {
  it("has the scenarios", () => {
    requireBuilt();
    expect(scenarios.length).toBeGreaterThanOrEqual(6);
  });
  it("fails a scenario with a step kind or a field it does not know, never skips it", async () => {
    const unknownKind = { name: "x", description: "", steps: [{ do: "teleport" }] };
    await expect(new Runner(unknownKind, scope).run()).rejects.toThrow(/unknown step kind "teleport"/);
    const unknownField = { name: "x", description: "", steps: [{ do: "start_redis", cluster: true }] };
    await expect(new Runner(unknownField, scope).run()).rejects.toThrow(/unknown field\(s\) cluster/);
  });
  for (const sc of scenarios) {
    it(sc.name, async () => {
      await new Runner(sc, scope).run();
    }, 90_000);
  }
});
