import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { stop as stopEsbuild, transform } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServerProcess, type ServerProcess } from "./support/server-process.js";

const run = promisify(execFile);

// The README's "Service configuration" examples, run as written except for
// the port (and the SDK's import, pointed at the built SDK): the five curl
// calls in order, then the TypeScript ConfigWatcher example as a program.

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const section = readme.slice(readme.indexOf("## Service configuration"), readme.indexOf("\n## ", readme.indexOf("## Service configuration") + 1));
const sh = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
const ts = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const SDK = new URL("../../sdks/typescript/dist/index.js", import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), "maxine-readme-config-"));
let server: ServerProcess;

beforeAll(async () => {
  server = await startServerProcess({ MAXINE_DATA_DIR: join(dir, "data") });
});
afterAll(async () => {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

const shell = async (script: string): Promise<any> => JSON.parse((await run("bash", ["-c", script.replaceAll(":7400", `:${server.port}`)], { timeout: 10_000 })).stdout);

describe("README: Service configuration", () => {
  it("the curl examples work verbatim: Put, compare-and-set Put, Get, History, Rollback", async () => {
    expect(sh).toHaveLength(5);
    const [put, cas, get, history, rollback] = sh as [string, string, string, string, string];
    expect(await shell(put)).toMatchObject({ entry: { key: "limits.json", version: "1", value: Buffer.from('{"max":5}').toString("base64") } });
    expect(await shell(put)).toMatchObject({ code: "failed_precondition" });
    expect(await shell(cas)).toMatchObject({ entry: { version: "2" } });
    expect(await shell(get)).toMatchObject({ entry: { version: "2", value: Buffer.from('{"max":6}').toString("base64"), contentType: "application/json" } });
    expect((await shell(history)).entries.map((e: any) => e.version)).toEqual(["2", "1"]);
    expect(await shell(rollback)).toMatchObject({ entry: { version: "3", value: Buffer.from('{"max":5}').toString("base64") } });
  });

  it("the TypeScript ConfigWatcher example prints the value, then each change", async () => {
    expect(ts).toHaveLength(1);
    const file = join(dir, "example.mjs");
    // TypeScript to JavaScript (types stripped, nothing else changed), the SDK from its build
    const js = (await transform(ts[0]!, { loader: "ts", format: "esm" })).code;
    await stopEsbuild();
    writeFileSync(file, js.replace('from "@maxine/sdk"', `from ${JSON.stringify(SDK)}`).replace(":7400", `:${server.port}`));
    const child = spawn(process.execPath, [file], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    try {
      const deadline = Date.now() + 10_000;
      while (!out.includes("5\n")) {
        if (Date.now() > deadline) throw new Error(`no value printed: ${out} ${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      await run("bash", ["-c", sh[1]!.replaceAll(":7400", `:${server.port}`).replace('"expectedVersion":"1"', '"expectedVersion":"3"')]);
      while (!out.includes("now 6 version 4")) {
        if (Date.now() > deadline) throw new Error(`no change printed: ${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(JSON.parse(readFileSync(join(dir, ".cache", "limits.json"), "utf8"))).toMatchObject({ version: "4" });
    } finally {
      child.kill("SIGKILL");
      if (child.exitCode === null && child.signalCode === null) await once(child, "exit");
      child.stdout.destroy();
      child.stderr.destroy();
    }
  });
});
