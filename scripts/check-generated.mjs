#!/usr/bin/env node
// Fails when the committed generated code differs from a fresh `buf generate`
// (buf.gen.yaml and buf.gen.grpc.yaml, from proto/) or a fresh generation of the conformance suite's
// protos (server/test/conformance/buf.gen.yaml, from the pinned Go module):
// regenerates into the work tree and asks git whether anything changed.
import { execFileSync } from "node:child_process";

const GENERATED = ["sdks/typescript/src/gen", "sdks/go/gen", "sdks/python/src/maxine/gen", "server/test/conformance/gen"];
execFileSync("npx", ["buf", "generate"], { stdio: "inherit" });
execFileSync("npx", ["buf", "generate", "--template", "buf.gen.grpc.yaml"], { stdio: "inherit" });
execFileSync("bash", ["scripts/generate-conformance.sh"], { stdio: "inherit" });
const status = execFileSync("git", ["status", "--porcelain", "--", ...GENERATED], { encoding: "utf8" });
if (status.trim() !== "") {
  process.stderr.write(
    `generated code is out of date with proto/ or the conformance protos (run \`npm run generate\` and commit):\n${status}` +
      execFileSync("git", ["diff", "--stat", "--", ...GENERATED], { encoding: "utf8" }),
  );
  process.exit(1);
}
console.log("generated code matches proto/");
