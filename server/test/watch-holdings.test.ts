import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { instanceDigest } from "@maxine/sdk/digest";
import { OperatorStatus, ServingStatus } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import type { Maxine } from "../src/app.js";
import { Collector, details, grpcClient, unary } from "./support/grpc-client.js";
import { startInProcess, watchJson } from "./support/in-process.js";

// A watch the server cannot resume (a restarted registry: another registry
// id) opens with a differential snapshot when the client says what it holds
// (WatchServicesRequest.held): only the instances it lacks or holds
// otherwise, and removals for the held ones that are gone. Real servers on
// port 0; gRPC with @grpc/grpc-js (the .proto loaded at run time) and
// Connect JSON with plain fetch.

type Wire = Record<string, any>;
const enumNumber = (e: Record<string, unknown>, prefix: string, v: unknown): number =>
  typeof v === "number" ? v : v === undefined ? 0 : (e[String(v).slice(prefix.length)] as number);

/** digestOf is the content digest of an instance as grpc-js (enums as names) or the JSON mapping (zero values left out) gives it. */
function digestOf(i: Wire): bigint {
  return instanceDigest({
    service: i.service ?? "",
    instanceId: i.instanceId ?? "",
    host: i.host ?? "",
    port: i.port ?? 0,
    version: i.version ?? "",
    zone: i.zone ?? "",
    tags: i.tags ?? [],
    metadata: i.metadata ?? {},
    weight: i.weight ?? 0,
    status: enumNumber(ServingStatus, "SERVING_STATUS_", i.status),
    owner: i.owner ?? "",
    operatorStatus: enumNumber(OperatorStatus, "OPERATOR_STATUS_", i.operatorStatus),
  });
}

/** View is a client's copy: "service/id" -> instance. */
type View = Map<string, Wire>;
const keyOf = (i: Wire): string => `${i.service}/${i.instanceId}`;

/** heldOf names what a view holds, as WatchServicesRequest.held (digests as decimal strings: fixed64 in JSON and grpc-js longs). */
function heldOf(view: View, extra: Array<{ service: string; instanceId: string; digest: string }> = []): Wire {
  const by = new Map<string, Array<{ instanceId: string; digest: string }>>();
  for (const i of view.values()) (by.get(i.service) ?? by.set(i.service, []).get(i.service)!).push({ instanceId: i.instanceId, digest: String(digestOf(i)) });
  for (const e of extra) (by.get(e.service) ?? by.set(e.service, []).get(e.service)!).push({ instanceId: e.instanceId, digest: e.digest });
  return { services: [...by].map(([service, instances]) => ({ service, instances })) };
}

/** applySnapshot folds a snapshot's messages into view as an SDK does: whole replaces, differential keeps the named held instances less removals. */
function applySnapshot(view: View, messages: readonly Wire[]): { end: Wire; sent: Wire[]; removed: Wire[] } {
  const sent: Wire[] = [];
  const removed: Wire[] = [];
  let end: Wire | undefined;
  for (const m of messages) {
    if (m.snapshot) {
      sent.push(...(m.snapshot.instances ?? []));
      removed.push(...(m.snapshot.removed ?? []));
    } else if (m.snapshotEnd) {
      end = m.snapshotEnd;
      break;
    }
  }
  if (end === undefined) throw new Error("no snapshot_end");
  if (!end.differential) view.clear();
  for (const k of removed) view.delete(keyOf(k));
  for (const i of sent) view.set(keyOf(i), i);
  return { end, sent, removed };
}

/** content is a view without what each registry sets for itself, for comparing views across registries. */
function content(view: View): Record<string, bigint> {
  return Object.fromEntries([...view].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, i]) => [k, digestOf(i)]));
}

const inst = (service: string, id: string, port = 9000) => ({
  service,
  instanceId: id,
  host: "10.7.0.1",
  port,
  tags: id.endsWith("0") ? ["canary", "blue"] : [],
  metadata: id.endsWith("5") ? { rack: "r1", "zone-key": "é" } : {},
});
const SERVICES = ["alpha", "beta"];
const ids = (n: number) => Array.from({ length: n }, (_, i) => `i${i}`);

async function registerAll(client: Wire, list: ReturnType<typeof inst>[]): Promise<void> {
  for (let i = 0; i < list.length; i += 25) await Promise.all(list.slice(i, i + 25).map((instance) => unary(client, "Register", { instance })));
}

async function snapshotOf(client: Wire, req: Wire): Promise<{ messages: Wire[]; watch: Collector }> {
  const watch = new Collector(client.WatchServices(req));
  const messages = await watch.waitFor((m) => m.some((x: Wire) => x.snapshotEnd));
  return { messages, watch };
}

describe("a watcher resuming into a restarted registry with what it holds", () => {
  let a: Maxine & { url: string };
  let b: Maxine & { url: string };
  let clientB: Wire;
  const before: View = new Map();
  let oldRevision = "";
  let oldRegistry = "";
  // after the restart: i0..i2 of alpha changed port, i3..i6 of beta never came back, five new ones in alpha
  const changed = ["alpha/i0", "alpha/i1", "alpha/i2"];
  const gone = ["beta/i3", "beta/i4", "beta/i5", "beta/i6"];
  const added = ids(5).map((i) => `alpha/new-${i}a`);

  beforeAll(async () => {
    a = await startInProcess();
    const clientA = grpcClient(a.port);
    await registerAll(clientA, SERVICES.flatMap((s) => ids(20).map((i) => inst(s, i))));
    const { messages, watch } = await snapshotOf(clientA, {});
    const { end } = applySnapshot(before, messages);
    oldRevision = end.revision;
    oldRegistry = end.registryId;
    watch.call.cancel();
    clientA.close();
    await a.close();

    b = await startInProcess();
    clientB = grpcClient(b.port);
    const back = SERVICES.flatMap((s) => ids(20).map((i) => inst(s, i))).filter((i) => !gone.includes(keyOf(i)));
    await registerAll(clientB, back.map((i) => (changed.includes(keyOf(i)) ? { ...i, port: 9001 } : i)));
    await registerAll(clientB, ids(5).map((i) => inst("alpha", `new-${i}a`)));
  });
  afterAll(async () => {
    clientB?.close();
    await b?.close();
  });

  it("gets over gRPC only the differences, flagged differential, and its view then equals the registry", async () => {
    expect(before.size).toBe(40);
    const view: View = new Map(before);
    const { messages, watch } = await snapshotOf(clientB, { resumeRevision: oldRevision, registryId: oldRegistry, held: heldOf(view) });
    const { end, sent, removed } = applySnapshot(view, messages);
    expect(end).toMatchObject({ reset: true, reason: "RESET_REASON_REGISTRY_CHANGED", differential: true });
    expect(sent.map(keyOf).sort()).toEqual([...changed, ...added].sort());
    expect(removed.map(keyOf).sort()).toEqual([...gone].sort());
    expect(removed.every((k) => k.namespace === "default")).toBe(true);
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    expect(metrics).toMatch(/^maxine_watch_snapshot_kept_total 33$/m);
    expect(metrics).toMatch(/^maxine_watch_snapshot_instances_total 8$/m);
    const whole = new Map<string, Wire>();
    const full = await snapshotOf(clientB, {});
    applySnapshot(whole, full.messages);
    expect(whole.size).toBe(41);
    expect(content(view)).toEqual(content(whole));
    full.watch.call.cancel();

    // live changes follow as events
    await unary(clientB, "Register", { instance: inst("delta", "live") });
    await watch.waitFor((m) => m.some((x: Wire) => x.event?.instance?.instanceId === "live"));
    expect(watch.error).toBeUndefined();
    watch.call.cancel();
    await unary(clientB, "Deregister", { key: { service: "delta", instanceId: "live" } });
  });

  it("gets over Connect JSON (fetch) the same differences, and removals for held instances it should not have", async () => {
    const view: View = new Map(before);
    const stale = [
      { service: "alpha", instanceId: "ghost", digest: "12345" }, // never registered
      { service: "gamma", instanceId: "x1", digest: "1" }, // a service that does not exist
    ];
    // beta/i0 held with a wrong digest: it is sent whole again
    const held = heldOf(view, stale);
    const beta = held.services.find((s: Wire) => s.service === "beta");
    beta.instances.find((i: Wire) => i.instanceId === "i0").digest = "42";
    for (const s of stale) view.set(`${s.service}/${s.instanceId}`, { service: s.service, instanceId: s.instanceId });
    const ac = new AbortController();
    const stream = await watchJson(b.url, { resumeRevision: oldRevision, registryId: oldRegistry, held }, ac.signal);
    const messages: Wire[] = [];
    for (let m = await stream.next(); m !== undefined; m = await stream.next()) {
      messages.push(m);
      if (m.snapshotEnd) break;
    }
    ac.abort();
    await stream.cancel();
    const { end, sent, removed } = applySnapshot(view, messages);
    expect(end).toMatchObject({ reset: true, reason: "RESET_REASON_REGISTRY_CHANGED", differential: true });
    expect(sent.map(keyOf).sort()).toEqual([...changed, ...added, "beta/i0"].sort());
    expect(removed.map(keyOf).sort()).toEqual([...gone, "alpha/ghost", "gamma/x1"].sort());
    const whole = new Map<string, Wire>();
    const full = await snapshotOf(clientB, {});
    applySnapshot(whole, full.messages);
    full.watch.call.cancel();
    expect(content(view)).toEqual(content(whole));
  });

  it("removes held instances that no longer match the watch's filter or services", async () => {
    const view: View = new Map(before);
    const { messages, watch } = await snapshotOf(clientB, {
      services: ["alpha"],
      filter: { tags: ["canary"] },
      resumeRevision: oldRevision,
      registryId: oldRegistry,
      held: heldOf(view),
    });
    watch.call.cancel();
    const { end, sent, removed } = applySnapshot(view, messages);
    expect(end.differential).toBe(true);
    // alpha's canaries are i0 (changed port) and i10; everything else held is removed
    expect(sent.map(keyOf)).toEqual(["alpha/i0"]);
    expect(removed.length).toBe(38);
    expect([...view.keys()].sort()).toEqual(["alpha/i0", "alpha/i10"]);
  });

  it("gets the whole snapshot as before when it names no holdings", async () => {
    const view: View = new Map(before);
    const { messages, watch } = await snapshotOf(clientB, { resumeRevision: oldRevision, registryId: oldRegistry });
    watch.call.cancel();
    const { end, sent, removed } = applySnapshot(view, messages);
    expect(end).toMatchObject({ reset: true, reason: "RESET_REASON_REGISTRY_CHANGED", differential: false });
    expect(sent.length).toBe(41);
    expect(removed).toEqual([]);
  });

  it("ignores holdings when the resume is replayed from history", async () => {
    const { messages, watch } = await snapshotOf(clientB, {});
    const end = messages.find((m) => m.snapshotEnd)!.snapshotEnd;
    watch.call.cancel();
    await unary(clientB, "Register", { instance: inst("delta", "replayed") });
    const resumed = new Collector(clientB.WatchServices({ resumeRevision: end.revision, registryId: end.registryId, held: heldOf(before) }));
    await resumed.waitFor((m) => m.some((x: Wire) => x.progress));
    expect(resumed.messages.some((x: Wire) => x.snapshot || x.snapshotEnd)).toBe(false);
    expect(resumed.messages[0].event.instance.instanceId).toBe("replayed");
    resumed.call.cancel();
    await unary(clientB, "Deregister", { key: { service: "delta", instanceId: "replayed" } });
  });
});

describe("holdings are bounded and checked (MAXINE_WATCH_MAX_HELD=5)", () => {
  let server: Maxine & { url: string };
  let client: Wire;
  beforeAll(async () => {
    server = await startInProcess({ MAXINE_WATCH_MAX_HELD: "5" });
    client = grpcClient(server.port);
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  const held = (n: number, id = (i: number) => `i${i}`) => ({
    services: [{ service: "alpha", instances: Array.from({ length: n }, (_, i) => ({ instanceId: id(i), digest: "1" })) }],
  });
  const cases: Array<[string, Wire, string]> = [
    ["too many", held(6), "held.services: at most 5 held instances in all (MAXINE_WATCH_MAX_HELD), got 6"],
    ["a repeated id", held(2, () => "same"), `held.services[0].instances[1].instance_id: must name each instance once, "same" is repeated`],
    ["a bad id", held(1, () => "a b"), "held.services[0].instances[0].instance_id: must be 1..128 characters"],
    [
      "a repeated service",
      { services: [{ service: "alpha", instances: [] }, { service: "alpha", instances: [] }] },
      `held.services[1].service: must name each service once, "alpha" is repeated`,
    ],
  ];
  for (const [what, h, message] of cases) {
    it(`refuses ${what} with INVALID_ARGUMENT naming the field, over gRPC and Connect JSON`, async () => {
      const watch = new Collector(client.WatchServices({ held: h }));
      await watch.closed();
      expect(watch.error?.code).toBe(3);
      expect(details(watch.error)).toContain(message);
      const res = await fetch(`${server.url}/maxine.registry.v1.RegistryService/WatchServices`, {
        method: "POST",
        headers: { "content-type": "application/connect+json" },
        body: envelopeOf({ held: h }),
      });
      const text = Buffer.from(await res.arrayBuffer()).toString("utf8");
      expect(text).toContain('"code":"invalid_argument"');
      expect(text).toContain(JSON.stringify(message).slice(1, -1));
    });
  }

  it("accepts the limit itself", async () => {
    const { messages, watch } = await snapshotOf(client, { held: held(5) });
    watch.call.cancel();
    const end = messages.find((m) => m.snapshotEnd)!.snapshotEnd;
    expect(end.differential).toBe(true);
    expect(messages.flatMap((m) => m.snapshot?.removed ?? []).length).toBe(5);
  });
});

function envelopeOf(json: unknown): Uint8Array {
  const payload = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}
