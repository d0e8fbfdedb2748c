#!/usr/bin/env node
// hash-token prints the SHA-256 (hex) of a token read from stdin, for a
// tokens file entry `<principal> sha256:<hex> [roles]` (docs/security.md).
// One trailing newline is dropped, so `echo "$TOKEN" | node scripts/hash-token.mjs` works.
import { createHash } from "node:crypto";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const token = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
if (token === "") {
  process.stderr.write("hash-token: no token on stdin (usage: echo \"$TOKEN\" | node scripts/hash-token.mjs)\n");
  process.exit(2);
}
process.stdout.write(createHash("sha256").update(token, "utf8").digest("hex") + "\n");
