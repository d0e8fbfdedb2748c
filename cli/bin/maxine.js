#!/usr/bin/env node
// The `maxine` command: runs the compiled CLI (cli/dist, built by `npm run
// build`, which `npm ci` runs through the root package's prepare script).
try {
  await import("../dist/main.js");
} catch (err) {
  if (err?.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes("dist/main.js")) {
    process.stderr.write("maxine: the CLI is not built yet: run `npm run build` at the repository root\n");
    process.exit(1);
  }
  throw err;
}
