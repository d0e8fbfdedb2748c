import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ConfigWatcher, createConfigClient, getConfig, type ConfigClient, type ConfigValue } from "../src/config-watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Scope } from "./support/scope.js";
import { startTestServer } from "./support/sdk-server.js";
import { freePort, waitFor } from "./support/wait.js";

// The TypeScript SDK's configuration API against a live server process:
// getConfig, and ConfigWatcher (JSON decoded, change events and async
// iteration, the last good value kept through an outage and a bad version,
// resume without gaps, a file cache to start while the registry is down).

const scope = new Scope();
afterEach(() => scope.close());
const dir = mkdtempSync(join(tmpdir(), "maxine-sdk-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Limits {
  readonly max: number;
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

async function server(env: Record<string, string> = {}): Promise<ServerProcess> {
  return scope.defer(await startTestServer({ MAXINE_DATA_DIR: join(dir, "data"), ...env }), (s) => s.stop());
}

function client(url: string): ConfigClient {
  const connection = scope.defer(new Http2SessionManager(url), (c) => c.abort());
  return createConfigClient({ baseUrl: url, sessionManager: connection });
}

function watcher<T>(c: ConfigClient, opts: Omit<ConstructorParameters<typeof ConfigWatcher<T>>[1], "backoff">): ConfigWatcher<T> {
  return scope.defer(new ConfigWatcher<T>(c, { backoff: { baseMs: 20, maxMs: 100 }, ...opts }), (w) => w.close());
}

describe("ConfigWatcher and getConfig against a live server", () => {
  it("decodes JSON, follows changes (events and for await), keeps the last good value through a bad version and a delete", async () => {
    const s = await server();
    const c = client(s.url);
    await c.put({ service: "pay", key: "limits.json", value: json({ max: 1 }), contentType: "application/json" });
    expect(await getConfig<Limits>(c, { service: "pay", key: "limits.json" })).toMatchObject({ value: { max: 1 }, version: 1n, source: "registry" });
    const w = watcher<Limits>(c, { service: "pay", key: "limits.json" });
    await w.ready(5000);
    expect(w.value).toEqual({ max: 1 });
    const seen: ConfigValue<Limits>[] = [];
    const iterated = (async () => {
      for await (const v of w) {
        seen.push(v);
        if (v.value.max === 3) break;
      }
    })();
    const invalid: bigint[] = [];
    w.on("invalid", (_e, version) => invalid.push(version));
    await c.put({ service: "pay", key: "limits.json", value: json({ max: 2 }) });
    await c.put({ service: "pay", key: "other", value: json("ignored") });
    await c.put({ service: "pay", key: "limits.json", value: new TextEncoder().encode("{not json") });
    await waitFor(() => invalid.length === 1, "the invalid version");
    expect(invalid).toEqual([3n]);
    expect(w.value).toEqual({ max: 2 });
    await c.put({ service: "pay", key: "limits.json", value: json({ max: 3 }) });
    await iterated;
    expect(seen.map((v) => [v.value.max, v.version])).toEqual([
      [2, 2n],
      [3, 4n],
    ]);
    const deleted: bigint[] = [];
    w.on("deleted", (v) => deleted.push(v));
    await c.delete({ service: "pay", key: "limits.json" });
    await waitFor(() => deleted.length === 1, "the delete");
    expect(deleted).toEqual([5n]);
    expect(w.value).toBeUndefined();
  });

  it("keeps the value while the server is down, resumes after a restart on the same data directory without missing a change, and a cache file starts it while the registry is down", async () => {
    const port = await freePort();
    const cacheFile = join(dir, "cache", "limits.json");
    let s = await server({ MAXINE_PORT: String(port) });
    let c = client(s.url);
    await c.put({ service: "svc", key: "limits.json", value: json({ max: 10 }) });
    const w = watcher<Limits>(c, { service: "svc", key: "limits.json", cacheFile });
    await w.ready(5000);
    const changes: number[] = [];
    w.on("change", (v) => changes.push(v.value.max));
    const disconnects: unknown[] = [];
    w.on("disconnect", (e) => disconnects.push(e));
    await s.stop();
    await waitFor(() => disconnects.length > 0, "the disconnect");
    expect(w.value).toEqual({ max: 10 });
    // the server comes back on the same port and data directory; a change made there reaches the watcher by replay
    s = await server({ MAXINE_PORT: String(port) });
    c = client(s.url);
    await c.put({ service: "svc", key: "limits.json", value: json({ max: 11 }) });
    await waitFor(() => changes.includes(11), "the change after the restart");
    expect(changes).toEqual([11]);
    expect(JSON.parse(readFileSync(cacheFile, "utf8"))).toMatchObject({ version: "2" });
    await w.close();
    await s.stop();
    // with the registry down, a new watcher starts from the cache file
    const down = watcher<Limits>(client(`http://127.0.0.1:${port}`), { service: "svc", key: "limits.json", cacheFile });
    await down.ready(1000);
    expect(down.current).toMatchObject({ value: { max: 11 }, version: 2n, source: "cache" });
  });
});
