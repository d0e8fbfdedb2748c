import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { startInProcess } from "./support/in-process.js";

const run = promisify(execFile);

// The README's "xDS" example, run as written except for the port: the curl
// Register, then the grpc-js program (written into the checkout's .tmp/, so
// that it imports this checkout's @grpc/grpc-js and @grpc/grpc-js-xds) as a
// child process calling grpc.health.v1 on the registered address through xDS.

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const start = readme.indexOf("## xDS");
const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
const sh = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
const js = [...section.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
const dir = fileURLToPath(new URL(`../../.tmp/readme-xds-${process.pid}/`, import.meta.url));
let server: Maxine & { url: string };

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  server = await startInProcess();
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("README: xDS", () => {
  it("the curl Register and the grpc-js program work verbatim: the call reaches the service through xDS", async () => {
    expect(sh).toHaveLength(1);
    expect(js).toHaveLength(1);
    const port = (s: string) => s.replaceAll(":7400", `:${server.port}`).replaceAll('"port":7400', `"port":${server.port}`);
    const registered = JSON.parse((await run("bash", ["-c", port(sh[0]!)], { timeout: 10_000 })).stdout);
    expect(registered).toMatchObject({ instance: { service: "health-demo", port: server.port } });
    const file = `${dir}xds-demo.mjs`;
    writeFileSync(file, port(js[0]!));
    const env = { ...process.env };
    delete env["GRPC_XDS_BOOTSTRAP_CONFIG"];
    const { stdout } = await run(process.execPath, [file], { timeout: 15_000, env });
    expect(stdout.trim()).toBe("health-demo via xDS: SERVING");
  });
});
