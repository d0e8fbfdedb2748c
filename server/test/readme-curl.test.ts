import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { makeTestCerts } from "./support/tls-certs.js";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServerProcess, type ServerProcess } from "./support/server-process.js";

const run = promisify(execFile);

// The README's curl examples, run as written except for the port.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("## Try it with curl"), readme.indexOf("## TypeScript SDK"));
const allBlocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
// the cleartext examples, one per RPC; the TLS one is run on its own (below)
const blocks = allBlocks.filter((b) => !b.includes("https://"));
const tlsBlock = allBlocks.find((b) => b.includes("https://"));
const block = (rpc: string): string => {
  const found = blocks.find((b) => b.includes(`RegistryService/${rpc}`));
  if (found === undefined) throw new Error(`README has no curl example for ${rpc}`);
  return found;
};

let server: ServerProcess;
const sh = async (script: string): Promise<string> => {
  const { stdout } = await run("bash", ["-c", script.replaceAll(":7400", `:${server.port}`)], { timeout: 10_000 });
  return stdout;
};

beforeAll(async () => {
  server = await startServerProcess();
});
afterAll(async () => {
  await server.stop();
});

describe("README curl examples", () => {
  it("has one example per RPC", () => {
    for (const rpc of ["Register", "Discover", "ListServices", "WatchServices", "Heartbeat", "Deregister"]) block(rpc);
    expect(blocks.length).toBe(6);
  });

  it("work verbatim against a running server", async () => {
    const reg = JSON.parse(await sh(block("Register")));
    expect(reg).toMatchObject({ instance: { service: "payments", instanceId: "payments-1", zone: "eu-1a" }, leaseTtl: "30s" });

    const disc = JSON.parse(await sh(block("Discover")));
    expect(disc.instance.instanceId).toBe("payments-1");
    expect(disc.instances).toHaveLength(1);

    const list = JSON.parse(await sh(block("ListServices")));
    expect(list.services).toEqual([{ service: "payments", instanceCount: 1, servingCount: 1 }]);

    // The watch runs until stopped: run it in its own process group and stop it ourselves.
    const watch = spawn("bash", ["-c", block("WatchServices").replaceAll(":7400", `:${server.port}`)], {
      detached: true,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let watched = "";
    watch.stdout.on("data", (d: Buffer) => (watched += d.toString("latin1")));
    try {
      await expect.poll(() => watched, { timeout: 5_000 }).toContain('"snapshotEnd"');
      expect(watched).toContain('"instanceId":"payments-1"');

      const beat = await sh(block("Heartbeat"));
      expect(beat).toContain('"result":"BEAT_RESULT_RENEWED"');
      // The curl heartbeat stream ended at once: after the 1 s grace the watch sees the removal.
      await expect.poll(() => watched, { timeout: 5_000 }).toContain('"removalReason":"REMOVAL_REASON_STREAM_CLOSED"');
    } finally {
      process.kill(-watch.pid!, "SIGTERM");
    }

    expect(JSON.parse(await sh(block("Deregister")))).toMatchObject({ code: "not_found" });
    await sh(block("Register"));
    expect(JSON.parse(await sh(block("Deregister")))).toMatchObject({ revision: expect.any(String) });
  });
});

describe("README TLS curl example", () => {
  it("makes certificates with the script, and curl --cacert reaches the TLS server", async () => {
    expect(tlsBlock, "README has a curl example over TLS").toBeDefined();
    const lines = tlsBlock!.replaceAll("\\\n", " ").split("\n").filter((l) => l.trim() !== "");
    expect(lines[0]).toBe("bash scripts/make-test-certs.sh .tmp/certs");
    expect(lines[1]).toMatch(/^MAXINE_TLS_CERT=\.tmp\/certs\/server\.pem MAXINE_TLS_KEY=\.tmp\/certs\/server-key\.pem npm start &$/);
    const certs = await makeTestCerts(); // the script of the first line, into a temporary directory
    const tls = await startServerProcess({ MAXINE_TLS_CERT: certs.path("server.pem"), MAXINE_TLS_KEY: certs.path("server-key.pem") });
    try {
      const curl = lines[2]!.replaceAll(".tmp/certs/", `${certs.dir}/`).replaceAll(":7400", `:${tls.port}`);
      const { stdout } = await run("bash", ["-c", curl], { timeout: 10_000 });
      expect(JSON.parse(stdout)).toMatchObject({ registryId: expect.any(String) });
    } finally {
      await tls.stop();
      await certs.remove();
    }
  });
});
