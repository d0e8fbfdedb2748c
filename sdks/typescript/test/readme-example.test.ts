import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { startTestServer } from "./support/sdk-server.js";

// The README's SDK example, run as written (port swapped) from a file in the
// repository, so that "@maxine/sdk" resolves to the workspace package as it
// would for a user; its output must be the one the README shows.

const run = promisify(execFile);
const ROOT = new URL("../../../", import.meta.url);
const readme = readFileSync(new URL("README.md", ROOT), "utf8");
const start = readme.indexOf("## TypeScript SDK");
const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
const script = /```js\n([\s\S]*?)```/.exec(section)?.[1];
const printed = /It prints:\n\n```\n([\s\S]*?)```/.exec(section)?.[1];
const file = fileURLToPath(new URL(`.tmp/readme-example-${process.pid}.mjs`, ROOT));

let server: ServerProcess;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  rmSync(file, { force: true });
  await server?.stop();
});

it("the README's SDK example prints what the README says, against a fresh server", async () => {
  expect(script, "README: no ```js block under ## TypeScript SDK").toBeDefined();
  expect(printed, "README: no 'It prints:' block under ## TypeScript SDK").toBeDefined();
  expect(script).toContain('"http://127.0.0.1:7400"');
  mkdirSync(fileURLToPath(new URL(".tmp/", ROOT)), { recursive: true });
  writeFileSync(file, script!.replaceAll(":7400", `:${server.port}`));
  const { stdout, stderr } = await run(process.execPath, [file], { timeout: 15_000 });
  expect(stderr).toBe("");
  expect(stdout).toBe(printed);
});
