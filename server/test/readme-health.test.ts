import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePortForTest } from "./support/free-port.js";
import { postJson } from "./support/in-process.js";
import { startServerProcess, type ServerProcess } from "./support/server-process.js";

// The README's active-check example ("## Health"), run as written except
// for the ports (the server's, and the probed node server's 8080), against
// the built server: the registration answers PENDING with the defaults
// filled in, the check passes within its interval, and once the probed
// process is gone the instance goes NOT_SERVING with the connect error.

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("## Health"), readme.indexOf("\n## ", readme.indexOf("## Health") + 1));
const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess();
});
afterAll(async () => {
  await server?.stop();
});

describe("README active-check example", () => {
  it("registers a check that passes, then fails with the connect error once the probed process is gone", async () => {
    expect(blocks).toHaveLength(1);
    const port = await freePortForTest();
    const script = blocks[0]!.replaceAll(":7400", `:${server.port}`).replaceAll("8080", String(port));
    // its own process group: the backgrounded node server is stopped with it
    const sh = spawn("bash", ["-c", script], { detached: true, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    sh.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await once(sh, "exit");
      const reg = JSON.parse(out);
      expect(reg.instance).toMatchObject({
        instanceId: "static-1",
        status: "SERVING_STATUS_NOT_SERVING",
        healthCheck: { http: { path: "/", method: "GET", expectedStatusMin: 200, expectedStatusMax: 399 }, interval: "2s", timeout: "2s", healthyThreshold: 1, unhealthyThreshold: 3, deregisterAfter: "60s" },
        checkResult: { status: "CHECK_STATUS_PENDING" },
      });
      await expect.poll(async () => (await discover()).checkResult, { timeout: 4_000, interval: 100 }).toMatchObject({ status: "CHECK_STATUS_PASSING", message: "HTTP 200 from /" });
    } finally {
      process.kill(-sh.pid!, "SIGTERM");
    }
    await expect.poll(async () => (await discover()).checkResult, { timeout: 10_000, interval: 200 }).toMatchObject({ status: "CHECK_STATUS_FAILING", message: "connect ECONNREFUSED" });
    expect((await discover()).status).toBe("SERVING_STATUS_NOT_SERVING");
  }, 30_000);
});

async function discover(): Promise<any> {
  return (await postJson(`http://127.0.0.1:${server.port}`, "Discover", { service: "static", includeAll: true })).json.instances[0];
}
