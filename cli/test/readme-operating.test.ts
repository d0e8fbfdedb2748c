import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { goTool } from "../../server/test/support/go-tools.js";
import { postJson } from "../../server/test/support/in-process.js";
import { startServerProcess, type ServerProcess } from "../../server/test/support/server-process.js";
import { cliEnv, exited, Lines } from "./support/cli.js";

// The README's "Operating Maxine" examples, run as written except for the
// port (MAXINE_ADDR for the CLI): grpc_health_probe and grpcurl as scripts/install-grpc-tools.sh
// installed them (on PATH), buf curl, and `npx maxine` from the repository.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const readme = readFileSync(new URL("README.md", `file://${ROOT}`), "utf8");
const section = readme.slice(readme.indexOf("## Operating Maxine"), readme.indexOf("## Configuration"));
const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
const block = (needle: string): string => {
  const found = blocks.find((b) => b.includes(needle));
  if (found === undefined) throw new Error(`README's Operating Maxine section has no example with ${needle}`);
  return found;
};

// The README's example output of `npx maxine instances payments`: times (age, lease left) differ from run to run, the rest must not.
const instancesOutput = /`npx maxine instances payments` prints[^`]*```text\n([\s\S]*?)```/.exec(section)?.[1]?.trimEnd().split("\n") ?? [];
const TIME = /^(\d+(\.\d)?s|\d+m\d\ds|\d+h\d\dm)$/;
const shapeOf = (line: string): RegExp =>
  new RegExp(`^${line.split(/\s{2,}/).map((cell) => (TIME.test(cell) ? "(\\d+(\\.\\d)?s|\\d+m\\d\\ds|\\d+h\\d\\dm)" : cell.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("\\s{2,}")}$`);

let server: ServerProcess;
const env = (): NodeJS.ProcessEnv => {
  const bin = goTool("grpcurl").replace(/\/grpcurl$/, "");
  goTool("grpc-health-probe");
  // the CLI examples use the default address (127.0.0.1:7400): MAXINE_ADDR points them at this test's server
  return cliEnv({ PATH: `${bin}:${process.env.PATH}`, MAXINE_ADDR: `127.0.0.1:${server.port}` });
};
const port = (script: string) => script.replaceAll(":7400", `:${server.port}`);
const sh = async (script: string): Promise<{ stdout: string; stderr: string }> =>
  promisify(execFile)("bash", ["-c", `set -e\n${port(script)}`], { cwd: ROOT, env: env(), timeout: 30_000 });

beforeAll(async () => {
  server = await startServerProcess();
  // payments-1, as the README's curl example registers it
  await postJson(server.url, "Register", { instance: { service: "payments", instanceId: "payments-1", host: "10.0.0.7", port: 8080, zone: "eu-1a", tags: ["v2"] }, leaseTtl: "600s" });
});
afterAll(async () => {
  await server?.stop();
});

describe("README: Operating Maxine", () => {
  it("has the examples the tests run", () => {
    expect(blocks.length).toBe(4);
    expect(instancesOutput.map((l) => l.split(/\s{2,}/)[0])).toEqual(["ID", "payments-1", "payments-2"]);
    expect(section).toContain("service: maxine.registry.v1.RegistryService"); // the Kubernetes readiness probe names the registry
  });

  it("grpc_health_probe", async () => {
    const { stderr } = await sh(block("grpc-health-probe -addr"));
    expect(stderr).toBe("status: SERVING\nstatus: SERVING\n");
  });

  it("grpcurl", async () => {
    const { stdout } = await sh(block("grpcurl -plaintext"));
    expect(stdout).toContain("grpc.health.v1.Health\ngrpc.reflection.v1.ServerReflection\ngrpc.reflection.v1alpha.ServerReflection\nmaxine.config.v1.ConfigService\nmaxine.registry.v1.RegistryService\n");
    expect(stdout).toContain("service RegistryService {");
    expect(stdout).toContain('"instanceId": "payments-1"');
  });

  it("buf curl", async () => {
    const { stdout } = await sh(block("buf curl"));
    expect(JSON.parse(stdout)).toMatchObject({ instance: { instanceId: "payments-1" } });
  });

  it("npx maxine", async () => {
    const lines = block("npx maxine").trim().split("\n");
    const started: ChildProcess[] = [];
    const background = (line: string) => {
      // its own process group: npx, its shell and node all get the signal, as from a terminal's Ctrl-C
      const child = spawn("bash", ["-c", port(line)], { cwd: ROOT, env: env(), stdio: ["ignore", "pipe", "pipe"], detached: true });
      started.push(child);
      return child;
    };
    const signal = (child: ChildProcess, sig: NodeJS.Signals) => process.kill(-child.pid!, sig);
    try {
      const reg = background(lines[0]!.replace(/ &$/, ""));
      const regOut = new Lines(reg);
      await regOut.waitFor((l) => l.startsWith("registered default/payments/payments-2 at 10.0.0.8:8080"), 20_000);
      const watch = background(lines.find((l) => l.includes(" watch "))!);
      const events = new Lines(watch);
      for (const line of lines.slice(1).filter((l) => !l.includes(" watch "))) {
        const { stdout } = await sh(line);
        if (line.includes(" services")) expect(stdout).toMatch(/^payments\s+2\s+2\s+0\s+0$/m);
        if (line.includes(" instances ")) {
          expect(stdout).toMatch(/^payments-2\s+10\.0\.0\.8:8080\s+eu-1a\s+-\s+v2\s+100\s+SERVING/m);
          // the README's example output, once payments-2's beats carry its --load (each beat after the first, every ~3.3 s)
          let out = stdout;
          for (const until = Date.now() + 15_000; !/^payments-2\s.*\s0\.4\s+\S+$/m.test(out) && Date.now() < until; ) out = (await sh(line)).stdout;
          const got = out.trimEnd().split("\n");
          expect(got).toHaveLength(instancesOutput.length);
          instancesOutput.forEach((want, i) => expect(got[i], want).toMatch(shapeOf(want)));
        }
        if (line.includes(" discover ")) expect(stdout).toMatch(/^\*\s+payments-\d\s+10\.0\.0\.\d:8080\s+eu-1a/m);
        if (line.includes(" drain ")) {
          expect(stdout).toMatch(/^drained default\/payments\/payments-2: status DRAINING at revision \d+$/m);
          // drained, payments-2 is never the server's choice
          const discover = await sh("npx maxine discover payments --all");
          expect(discover.stdout).toMatch(/^\s+payments-2\s.*\sDRAINING \(operator\)/m);
          expect(discover.stdout).not.toMatch(/^\*\s+payments-2\s/m);
        }
        if (line.includes(" undrain ")) expect(stdout).toMatch(/^undrained default\/payments\/payments-2: status SERVING at revision \d+$/m);
        if (line.includes(" health")) expect(stdout).toMatch(/maxine\.registry\.v1\.RegistryService\s+SERVING/);
      }
      // piped, watch writes JSON lines: the snapshot's instances as ADDED, then the deregistration on Ctrl-C
      await events.waitFor((l) => l.includes('"type":"ADDED"') && l.includes('"instanceId":"payments-2"'), 20_000);
      // (npx itself dies of the signal; the exit codes of maxine are checked in cli.test.ts)
      signal(reg, "SIGINT");
      await regOut.waitFor((l) => l === "deregistered default/payments/payments-2 (SIGINT)");
      await exited(reg);
      const removed = JSON.parse((await events.waitFor((l) => l.includes('"type":"REMOVED"'))).line);
      expect(removed).toMatchObject({ instanceId: "payments-2", reason: "DEREGISTERED" });
      signal(watch, "SIGINT");
      await exited(watch);
    } finally {
      for (const c of started) if (c.exitCode === null && c.signalCode === null) signal(c, "SIGKILL");
      await Promise.all(started.map(exited));
    }
  });
});
