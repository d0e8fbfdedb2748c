import { afterAll, beforeAll, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { postJson, startInProcess, watchJson } from "./support/in-process.js";

// GET /metrics: Prometheus text with the process metrics and the registry's
// gauges, read at scrape time.

let server: Maxine & { url: string };
beforeAll(async () => {
  server = await startInProcess();
});
afterAll(async () => {
  await server.close();
});

async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  const values = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    const m = /^(maxine_[a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/.exec(line);
    if (m !== null) values.set(m[1]! + (m[2] ?? ""), Number(m[3]));
  }
  return values;
}

it("serves the registry's gauges and Node.js process metrics", async () => {
  const before = await scrape();
  expect(before.get("maxine_instances")).toBe(0);
  expect(before.get("maxine_nodejs_heap_size_used_bytes")).toBeGreaterThan(0);
  for (const id of ["m1", "m2"]) {
    await postJson(server.url, "Register", { instance: { service: "metrics", instanceId: id, host: "10.4.0.1", port: 80 } });
  }
  const watch = await watchJson(server.url, { services: ["metrics"] });
  for (let m = await watch.next(); m?.snapshotEnd === undefined; m = await watch.next()) {
    if (m === undefined) throw new Error("the watch ended before its snapshot");
  }
  const after = await scrape();
  expect(after.get("maxine_instances")).toBe(2);
  expect(after.get("maxine_revision")).toBe(2);
  expect(after.get("maxine_watchers")).toBe(1);
  expect(after.get("maxine_heartbeat_streams")).toBe(0);
  await watch.cancel();
});

it("counts calls by method, protocol and code, and times them; counts heartbeat streams and beats, watchers", async () => {
  const before = await scrape();
  const delta = async (name: string) => (await scrape()).get(name)! - (before.get(name) ?? 0);
  await postJson(server.url, "Register", { instance: { service: "counted", instanceId: "c1", host: "10.4.0.1", port: 80 } });
  await postJson(server.url, "Discover", { service: "counted" });
  await postJson(server.url, "Discover", { service: "counted" });
  await postJson(server.url, "Discover", { service: "nowhere" });
  const stream = server.registry.openStream();
  await server.registry.heartbeat(stream, [
    { key: { namespace: "", service: "counted", instanceId: "c1" }, status: undefined, load: undefined },
    { key: { namespace: "", service: "counted", instanceId: "gone" }, status: undefined, load: undefined },
  ]);
  server.registry.closeStream(stream);
  await postJson(server.url, "Deregister", { key: { service: "counted", instanceId: "c1" } });
  const watch = await watchJson(server.url, { services: ["counted"] });
  await watch.next();
  await watch.cancel();
  const calls = (method: string, code: string) => `maxine_rpc_requests_total{method="${method}",protocol="connect",code="${code}"}`;
  expect(await delta(calls("Register", "ok"))).toBe(1);
  expect(await delta(calls("Discover", "ok"))).toBe(2);
  expect(await delta(calls("Discover", "not_found"))).toBe(1);
  expect(await delta(calls("Deregister", "ok"))).toBe(1);
  expect(await delta(calls("WatchServices", "canceled"))).toBe(1);
  expect(await delta('maxine_rpc_duration_seconds_count{method="Discover",protocol="connect"}')).toBe(3);
  expect(await delta("maxine_heartbeat_streams_opened_total")).toBe(1);
  expect(await delta("maxine_heartbeat_messages_total")).toBe(1);
  expect(await delta("maxine_beats_renewed_total")).toBe(1);
  expect(await delta("maxine_beats_unknown_total")).toBe(1);
  expect(await delta("maxine_watchers_opened_total")).toBe(1);
});
