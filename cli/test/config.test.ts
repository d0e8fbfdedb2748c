import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServerProcess, type ServerProcess } from "../../server/test/support/server-process.js";
import { exited, Lines, runCli, spawnCli } from "./support/cli.js";

// `maxine config ...` as a person or a script runs it: a child process
// against a real server process (its configuration in a temporary
// directory), output from a pipe, exit codes checked.

const dir = mkdtempSync(join(tmpdir(), "maxine-cli-config-"));
let server: ServerProcess;
let s: string[];

beforeAll(async () => {
  server = await startServerProcess({ MAXINE_DATA_DIR: join(dir, "data") });
  s = ["--server", `127.0.0.1:${server.port}`];
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("maxine config", () => {
  it("put (with --expect-version), get, list, history, diff, rollback and delete", async () => {
    const file = join(dir, "limits.json");
    writeFileSync(file, '{\n  "max": 5,\n  "burst": 10\n}\n');
    expect(await runCli([...s, "config", "put", "pay", "limits.json", "--file", file, "--content-type", "application/json", "--expect-version", "0"])).toMatchObject({
      code: 0,
      stdout: "pay/limits.json: version 1 (revision 1)\n",
    });
    // compare-and-set refused: exit 1, the server's message, nothing written
    const stale = await runCli([...s, "config", "put", "pay", "limits.json", "x", "--expect-version", "0"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toBe("maxine: FailedPrecondition: expected_version: key default/pay/limits.json is at version 1, expected 0 (must not exist); read it again and retry\n");
    writeFileSync(file, '{\n  "max": 6,\n  "burst": 10\n}\n');
    expect((await runCli([...s, "config", "put", "pay", "limits.json", "--file", file, "--expect-version", "1"])).code).toBe(0);
    expect(await runCli([...s, "config", "get", "pay", "limits.json"])).toMatchObject({ code: 0, stdout: '{\n  "max": 6,\n  "burst": 10\n}\n' });
    expect((await runCli([...s, "config", "get", "pay", "limits.json", "--version", "1"])).stdout).toContain('"max": 5');
    const json = JSON.parse((await runCli([...s, "-o", "json", "config", "get", "pay", "limits.json"])).stdout);
    expect(json).toMatchObject({ key: "limits.json", version: "2", principal: "anonymous", value: Buffer.from('{\n  "max": 6,\n  "burst": 10\n}\n').toString("base64") });

    const list = await runCli([...s, "config", "list", "pay"]);
    expect(list.stdout.split("\n")[0]).toMatch(/^KEY\s+VERSION\s+REVISION\s+UPDATED\s+BY\s+CONTENT-TYPE$/);
    expect(list.stdout.split("\n")[1]).toMatch(/^limits\.json\s+2\s+2\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+anonymous\s+application\/octet-stream$/);

    const diff = await runCli([...s, "config", "diff", "pay", "limits.json"]);
    expect(diff).toMatchObject({ code: 0, stdout: '--- pay/limits.json version 1\n+++ pay/limits.json version 2\n {\n-  "max": 5,\n+  "max": 6,\n   "burst": 10\n }\n' });

    expect(await runCli([...s, "config", "rollback", "pay", "limits.json", "1", "--expect-version", "2"])).toMatchObject({
      code: 0,
      stdout: "pay/limits.json: version 3 holds version 1's content (revision 3)\n",
    });
    expect((await runCli([...s, "config", "get", "pay", "limits.json"])).stdout).toContain('"max": 5');
    const history = await runCli([...s, "config", "history", "pay", "limits.json"]);
    expect(history.stdout.split("\n").slice(1, 4).map((l) => l.split(/\s+/)[0])).toEqual(["3", "2", "1"]);

    expect(await runCli([...s, "config", "delete", "pay", "limits.json"])).toMatchObject({ code: 0, stdout: "pay/limits.json: deleted (version 4, revision 4)\n" });
    const gone = await runCli([...s, "config", "get", "pay", "limits.json"]);
    expect(gone).toMatchObject({ code: 3, stderr: "maxine: NotFound: key: default/pay/limits.json does not exist (deleted at version 4)\n" });
  });

  it("usage errors exit 2: a bad version, a value given twice", async () => {
    for (const args of [
      ["config", "get", "pay", "k", "--version", "0"],
      ["config", "put", "pay", "k", "v", "--expect-version", "-1"],
      ["config", "rollback", "pay", "k", "x"],
    ]) {
      const r = await runCli([...s, ...args]);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const twice = await runCli([...s, "config", "put", "pay", "k", "v", "--file", "/dev/null"]);
    expect(twice).toMatchObject({ code: 2, stderr: "maxine: give the value as an argument or with --file (--file - reads standard input), not both\n" });
  });

  it("watch prints the current values, then one line per change, until SIGINT", async () => {
    await runCli([...s, "config", "put", "watched", "flags", "a=1"]);
    const child = spawnCli([...s, "config", "watch", "watched"]);
    const lines = new Lines(child);
    await lines.waitFor((l) => l === "current flags version 1: a=1");
    await runCli([...s, "config", "put", "watched", "flags", "a=2"]);
    await lines.waitFor((l) => l === "changed flags version 2: a=2");
    await runCli([...s, "config", "delete", "watched", "flags"]);
    await lines.waitFor((l) => l === "deleted flags version 3");
    child.kill("SIGINT");
    expect(await exited(child)).toBe(0);
  });
});
