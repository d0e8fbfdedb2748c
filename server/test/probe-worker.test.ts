import { createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProbeWorker, type ProbeReport } from "../src/checks/probe-runner.js";
import type { CheckSpec } from "../src/domain/health.js";

// The probe worker thread (server/dist/checks/probe-worker.js, built by
// `npm run build`) as the checker drives it: it probes a real HTTP target
// on 127.0.0.1 and reports outcomes in batches; when the thread dies it is
// started again with every task; a target outside the allow-list is
// refused at every probe; close ends the thread.

const hits: number[] = [];
let status = 200;
const target = createServer((_req, res) => {
  hits.push(Date.now());
  res.writeHead(status).end();
});
let port = 0;
beforeAll(async () => {
  port = await new Promise<number>((resolve) => target.listen(0, "127.0.0.1", () => resolve((target.address() as { port: number }).port)));
});
afterAll(async () => {
  target.closeAllConnections();
  await new Promise<void>((r) => target.close(() => r()));
});

const check: CheckSpec = {
  kind: "HTTP",
  port: 0,
  intervalMs: 200,
  timeoutMs: 150,
  healthyThreshold: 1,
  unhealthyThreshold: 1,
  deregisterAfterMs: 0,
  httpPath: "/healthz",
  httpMethod: "GET",
  statusMin: 200,
  statusMax: 399,
  grpcService: "",
};

async function until(cond: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("ProbeWorker", () => {
  it("probes on its thread, reports in batches, and is started again with every task when the thread dies", async () => {
    const exits: number[] = [];
    const pw = new ProbeWorker({ allow: "127.0.0.1/32", listenHost: "127.0.0.1", listenPort: 1, concurrency: 10 }, (code) => exits.push(code));
    const reports: ProbeReport[] = [];
    pw.reports((b) => reports.push(...b.reports));
    try {
      expect(pw.started).toBe(false); // no check, no thread
      pw.set("default/web/w-1", 7, { check, host: "127.0.0.1", port });
      pw.set("default/web/refused", 8, { check, host: "127.0.0.2", port });
      expect(pw.started).toBe(true);
      await until(() => reports.filter((r) => r.id === "default/web/w-1").length >= 2, "two reports");
      expect(reports.find((r) => r.id === "default/web/w-1")).toMatchObject({ gen: 7, kind: "HTTP", pass: true, message: "HTTP 200 from /healthz", timedOut: false });
      expect(reports.find((r) => r.id === "default/web/refused")).toMatchObject({
        gen: 8,
        pass: false,
        message: "target refused: instance.health_check: probe target 127.0.0.2:" + port + " is outside the networks health checks may reach (MAXINE_CHECK_ALLOW=127.0.0.1/32)",
      });

      // the thread dies: reported, then started again a second later with both tasks
      await (pw as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
      await until(() => exits.length === 1, "the exit to be reported");
      const after = Date.now();
      status = 503;
      // each task's first probe on the new thread comes at a random point of its interval: wait for both
      await until(
        () => reports.some((r) => r.id === "default/web/w-1" && r.startedAt > after) && reports.some((r) => r.id === "default/web/refused" && r.startedAt > after),
        "a report of each task from the new thread",
      );
      expect(pw.restarts).toBe(1);
      expect(reports.filter((r) => r.startedAt > after && r.id === "default/web/w-1")[0]).toMatchObject({ gen: 7, pass: false, message: "HTTP 503 from /healthz" });

      // delete stops a task's probes
      pw.delete("default/web/w-1");
      await new Promise((r) => setTimeout(r, 300));
      const n = hits.length;
      await new Promise((r) => setTimeout(r, 500));
      expect(hits.length).toBe(n);
    } finally {
      await pw.close();
    }
    expect(pw.started).toBe(false);
    expect(exits).toHaveLength(1); // close is not an unexpected exit
  });
});
