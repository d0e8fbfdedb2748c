#!/usr/bin/env node
// Fails when the committed generated code differs from a fresh `buf generate`
// (buf.gen.yaml and buf.gen.grpc.yaml, from proto/), a fresh generation of the conformance suite's
// protos (server/test/conformance/buf.gen.yaml, from the pinned Go module) or of the Envoy xDS API
// (scripts/generate-xds.sh, from the pinned @grpc/grpc-js-xds):
// regenerates into the work tree and asks git whether anything changed.
import { execFileSync } from "node:child_process";

const GENERATED = ["sdks/typescript/src/gen", "sdks/go/gen", "sdks/python/src/maxine/gen", "server/test/conformance/gen", "server/src/xds/gen"];
execFileSync("npx", ["buf", "generate"], { stdio: "inherit" });
execFileSync("npx", ["buf", "generate", "--template", "buf.gen.grpc.yaml"], { stdio: "inherit" });
execFileSync("bash", ["scripts/generate-conformance.sh"], { stdio: "inherit" });
execFileSync("bash", ["scripts/generate-xds.sh"], { stdio: "inherit" });
const status = execFileSync("git", ["status", "--porcelain", "--", ...GENERATED], { encoding: "utf8" });
if (status.trim() !== "") {
  process.stderr.write(
    `generated code is out of date with proto/, the conformance protos or the xDS protos (run \`npm run generate\` and commit):\n${status}` +
      execFileSync("git", ["diff", "--stat", "--", ...GENERATED], { encoding: "utf8" }),
  );
  process.exit(1);
}
console.log("generated code matches proto/");
