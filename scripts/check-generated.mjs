#!/usr/bin/env node
// Fails when the committed generated code differs from a fresh `buf generate`:
// regenerates into the work tree and asks git whether anything changed.
import { execFileSync } from "node:child_process";

const GENERATED = ["sdks/typescript/src/gen", "sdks/go/gen", "sdks/python/src/maxine/gen"];
execFileSync("npx", ["buf", "generate"], { stdio: "inherit" });
const status = execFileSync("git", ["status", "--porcelain", "--", ...GENERATED], { encoding: "utf8" });
if (status.trim() !== "") {
  process.stderr.write(
    `generated code is out of date with proto/ (run \`npm run generate\` and commit):\n${status}` +
      execFileSync("git", ["diff", "--stat", "--", ...GENERATED], { encoding: "utf8" }),
  );
  process.exit(1);
}
console.log("generated code matches proto/");
