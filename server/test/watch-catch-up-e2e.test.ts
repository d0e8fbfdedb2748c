import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { Collector, grpcClient, unary } from "./support/grpc-client.js";
import { startInProcess, watchJson } from "./support/in-process.js";

// Issue 14 end to end: resumes that replay exactly whatever their backlog,
// and a reader that stops reading, over gRPC (@grpc/grpc-js, no generated
// code) and Connect JSON (plain fetch), against a real server on port 0.

const SERVICE = "catch-up";
const inst = (id: string, pad = "") => ({ service: SERVICE, instanceId: id, host: "10.3.0.1", port: 9000, metadata: pad ? { pad } : {} });

/** registerMany makes n Registers, 50 at a time (calling each batch's end with its last revision), and returns the last revision. */
async function registerMany(
  client: Record<string, any>,
  prefix: string,
  n: number,
  pad = "",
  batchEnd: (revision: number) => Promise<unknown> = async () => {},
): Promise<number> {
  let last = 0;
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, (_, j) => unary<any>(client, "Register", { instance: inst(`${prefix}${i + j}`, pad) }));
    for (const r of await Promise.all(batch)) last = Math.max(last, Number(r.revision));
    await batchEnd(last);
  }
  return last;
}

/** eventRevisions checks a watch stream's revisions never go back and returns the events' revisions. */
function eventRevisions(messages: readonly any[]): number[] {
  let last = 0;
  const out: number[] = [];
  for (const m of messages) {
    const event = m.event;
    const end = m.snapshotEnd;
    if (event) {
      const rev = Number(event.revision);
      expect(rev, `event ${rev} after revision ${last}`).toBeGreaterThan(last);
      last = rev;
      out.push(rev);
    } else if (end) {
      // the JSON mapping leaves a zero revision out
      expect(Number(end.revision ?? 0)).toBeGreaterThanOrEqual(last);
      last = Number(end.revision ?? 0);
    }
  }
  return out;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

for (const overflow of ["reset", "close"]) {
  describe(`a resume with a backlog past MAXINE_WATCH_QUEUE (--watch-overflow ${overflow})`, () => {
    let server: Maxine & { url: string };
    let client: ReturnType<typeof grpcClient>;
    let registryId = "";
    let first = 0;
    let last = 0;
    beforeAll(async () => {
      server = await startInProcess({ MAXINE_WATCH_QUEUE: "16", MAXINE_WATCH_OVERFLOW: overflow });
      client = grpcClient(server.port);
      const r = await unary<any>(client, "Register", { instance: inst("first") });
      registryId = r.registryId;
      first = Number(r.revision);
      last = await registerMany(client, "i", 1_999);
    });
    afterAll(async () => {
      client.close();
      await server.close();
    });

    it("replays exactly the missed changes over gRPC, then a progress bookmark, then live changes", async () => {
      const watch = new Collector(client.WatchServices({ services: [SERVICE], resumeRevision: String(first), registryId }));
      await watch.waitFor((m) => m.some((x: any) => x.progress));
      expect(watch.messages.some((x: any) => x.snapshotEnd)).toBe(false);
      expect(eventRevisions(watch.messages)).toEqual(range(first + 1, last));
      expect(watch.messages.at(-1).progress).toMatchObject({ revision: String(last), registryId });
      const live = await unary<any>(client, "Register", { instance: inst("live-grpc") });
      await watch.waitFor((m) => m.some((x: any) => x.event?.instance?.instanceId === "live-grpc"));
      expect(watch.messages.at(-1).event.revision).toBe(live.revision);
      expect(watch.error).toBeUndefined();
      watch.call.cancel();
    });

    it("replays exactly the missed changes over Connect JSON (fetch)", async () => {
      const ac = new AbortController();
      const stream = await watchJson(server.url, { services: [SERVICE], resumeRevision: String(first), registryId }, ac.signal);
      const messages: any[] = [];
      for (let m = await stream.next(); m !== undefined && !m.progress; m = await stream.next()) messages.push(m);
      expect(stream.end).toBeUndefined();
      expect(messages.some((x) => x.snapshotEnd)).toBe(false);
      const revisions = eventRevisions(messages);
      expect(revisions[0]).toBe(first + 1);
      expect(revisions.at(-1)).toBeGreaterThanOrEqual(last);
      expect(revisions.length).toBe(revisions.at(-1)! - first);
      ac.abort();
      await stream.cancel();
    });
  });
}

describe("a Connect JSON reader that stops reading while changes churn (--watch-queue 256)", () => {
  let server: Maxine & { url: string };
  let client: ReturnType<typeof grpcClient>;
  beforeAll(async () => {
    server = await startInProcess({ MAXINE_WATCH_QUEUE: "256" });
    client = grpcClient(server.port);
  });
  afterAll(async () => {
    client.close();
    await server.close();
  });

  it("is reset to a snapshot that no older event follows, while a gRPC watcher gets every change in order", async () => {
    const healthy = new Collector(client.WatchServices({ services: [SERVICE] }));
    await healthy.waitFor((m) => m.some((x: any) => x.snapshotEnd));
    const ac = new AbortController();
    const slow = await watchJson(server.url, { services: [SERVICE] }, ac.signal);
    const messages: any[] = [await slow.next()];
    expect(messages[0].snapshotEnd).toBeDefined();
    // the slow client reads nothing more: its socket's buffers fill, then the server stops writing to it
    const pad = "x".repeat(2_000);
    // the healthy watcher reads each batch before the next is made, so it never falls behind its bound
    const last = await registerMany(client, "s", 3_000, pad, (rev) =>
      healthy.waitFor((m) => m.length > 0 && Number(m.at(-1).event?.revision) === rev, 10_000),
    );
    expect(eventRevisions(healthy.messages)).toEqual(range(1, last));
    expect(healthy.messages.some((x: any) => x.snapshotEnd?.reset)).toBe(false);
    for (let m = await slow.next(); m !== undefined; m = await slow.next()) {
      messages.push(m);
      if (m.snapshotEnd?.reset) break;
    }
    const before = eventRevisions(messages);
    expect(before.length).toBeLessThan(last); // it did fall behind
    const after = await unary<any>(client, "Register", { instance: inst("after") });
    for (let m = await slow.next(); m !== undefined; m = await slow.next()) {
      messages.push(m);
      if (m.event?.instance?.instanceId === "after") break;
    }
    const reset = messages.find((x) => x.snapshotEnd?.reset).snapshotEnd;
    expect(reset.reason).toBe("RESET_REASON_OVERFLOW");
    expect(Number(reset.revision)).toBe(last);
    eventRevisions(messages); // nothing older than the reset's snapshot follows it
    expect(messages.at(-1).event.revision).toBe(after.revision);
    ac.abort();
    await slow.cancel();
    healthy.call.cancel();
  });
});
