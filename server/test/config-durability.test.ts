import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { Collector, unary } from "./support/grpc-client.js";
import { startServerProcess, type ServerProcess } from "./support/server-process.js";

// Durability of the embedded default (LevelDB in MAXINE_DATA_DIR, fsync on):
// the built server as a child process, SIGKILLed right after a Put is
// acknowledged, restarted on the same directory; the value, its history and
// the configuration's identity are there, and a watch resumes across the
// restart without a reset.

const PROTO_ROOT = fileURLToPath(new URL("../../proto", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "maxine-config-durable-"));
const servers: ServerProcess[] = [];
const clients: grpc.Client[] = [];

function client(port: number): grpc.Client & Record<string, any> {
  const def = protoLoader.loadSync("maxine/config/v1/config.proto", { includeDirs: [PROTO_ROOT], longs: String, enums: String, defaults: true, oneofs: true });
  const Ctor = (grpc.loadPackageDefinition(def) as any).maxine.config.v1.ConfigService as typeof grpc.Client;
  const c = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
  clients.push(c);
  return c;
}

async function start(): Promise<ServerProcess> {
  const s = await startServerProcess({ MAXINE_DATA_DIR: dir });
  servers.push(s);
  return s;
}

afterAll(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await s.kill().catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe("configuration survives SIGKILL of the server", () => {
  it("every acknowledged Put is there after SIGKILL and a restart, with its history; a watch resumes across the restart", async () => {
    const a = await start();
    const ca = client(a.port);
    // a first write, so that the watch's revision is one to resume from (0 would ask for a fresh snapshot)
    await unary(ca, "Put", { service: "pay", key: "first", value: Buffer.from("1") });
    const w = new Collector(ca.Watch({ services: ["pay"] }));
    const end = (await w.waitFor((m) => m.some((x: any) => x.snapshotEnd))).find((x: any) => x.snapshotEnd);
    const { revision: from, registryId } = end.snapshotEnd;
    // concurrent writes (one group commit or several), then SIGKILL the moment the last is acknowledged
    const acked = await Promise.all(Array.from({ length: 20 }, (_, i) => unary<any>(ca, "Put", { service: "pay", key: `k${i % 4}`, value: Buffer.from(`v${i}`) })));
    const last = await unary<any>(ca, "Put", { service: "pay", key: "limits.json", value: Buffer.from('{"max":5}'), contentType: "application/json", expectedVersion: 0 });
    await a.kill();
    w.call.cancel();

    const b = await start();
    const cb = client(b.port);
    const got = await unary<any>(cb, "Get", { service: "pay", key: "limits.json" });
    expect(got.entry).toMatchObject({ version: "1", revision: last.entry.revision, contentType: "application/json" });
    expect(Buffer.from(got.entry.value).toString()).toBe('{"max":5}');
    for (const k of ["k0", "k1", "k2", "k3"]) {
      const history = await unary<any>(cb, "History", { service: "pay", key: k });
      const mine = acked.filter((x) => x.entry.key === k).map((x) => x.entry.version).sort((p: string, q: string) => Number(q) - Number(p));
      expect(history.entries.map((e: any) => e.version)).toEqual(mine);
      expect(history.entries.map((e: any) => Buffer.from(e.value).toString())).toEqual(
        mine.map((ver: string) => Buffer.from(acked.find((x) => x.entry.key === k && x.entry.version === ver).entry.value).toString()),
      );
    }
    // the revision counts on from where it was, and compare-and-set sees the stored versions
    await expect(unary(cb, "Put", { service: "pay", key: "limits.json", value: Buffer.from("x"), expectedVersion: 0 })).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    const next = await unary<any>(cb, "Put", { service: "pay", key: "limits.json", value: Buffer.from('{"max":6}'), expectedVersion: 1 });
    expect(Number(next.entry.revision)).toBe(Number(last.entry.revision) + 1);
    // resume from before the writes: exactly the 21 changes made before the kill, then the one after, with no reset snapshot
    const r = new Collector(cb.Watch({ services: ["pay"], resumeRevision: from, registryId }));
    await r.waitFor((m) => m.filter((x: any) => x.event).length === 22);
    expect(r.messages.some((x: any) => x.snapshotEnd)).toBe(false);
    const revisions = r.messages.filter((x: any) => x.event).map((x: any) => Number(x.event.revision));
    expect(revisions).toEqual(Array.from({ length: 22 }, (_, i) => Number(from) + 1 + i));
    r.call.cancel();
    await b.stop();
  });
});
