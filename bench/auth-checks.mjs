#!/usr/bin/env node
// Per-call cost of the authentication and authorization building blocks
// (server/src/auth), in-process, no server: a tokens-file lookup, a JWT
// verification (cached and uncached, ES256 and RS256) and a policy check.
// Not part of `npm test`; needs `npm run build`.
//
// Usage: node bench/auth-checks.mjs [seconds per case, default 1]
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { JwtVerifier } from "../server/dist/auth/jwt.js";
import { Policy } from "../server/dist/auth/policy.js";
import { TokenTable, sha256Hex } from "../server/dist/auth/tokens.js";

const seconds = Number(process.argv[2] ?? 1);
const dir = mkdtempSync(join(tmpdir(), "maxine-bench-auth-"));

async function measure(name, fn) {
  let n = 0;
  const end = performance.now() + seconds * 1000;
  const start = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await fn(n++);
  }
  const ns = ((performance.now() - start) * 1e6) / n;
  console.log(`${name.padEnd(44)} ${ns.toFixed(0).padStart(8)} ns/op  ${Math.round(1e9 / ns).toLocaleString("en").padStart(12)} op/s`);
}

const lines = Array.from({ length: 1000 }, (_, i) => `p${i} sha256:${sha256Hex(`token-${i}`)} reader`);
const table = TokenTable.parse(lines.join("\n"), "bench");
await measure("TokenTable.find (1,000 tokens, hit)", (i) => table.find(`token-${i % 1000}`));

const policy = Policy.parse(
  `roles:\n  reader:\n    - { permissions: [read], namespaces: ["*"], services: ["*"] }\n  writer:\n    - { permissions: [register], namespaces: [prod, "team-?"], services: ["payments*", "cart-*-api"] }\n`,
  "bench",
);
const roles = ["writer"];
await measure("Policy.can (100 service names)", (i) => policy.can(roles, "register", "prod", `payments-${i % 100}`));
await measure("Policy.can (a new service name each call)", (i) => policy.can(roles, "register", "prod", `payments-x${i}`));

for (const alg of ["ES256", "RS256"]) {
  const key = await generateKeyPair(alg);
  const pem = join(dir, `${alg}.pem`);
  writeFileSync(pem, await exportSPKI(key.publicKey));
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const tokens = await Promise.all(Array.from({ length: 100 }, (_, i) => new SignJWT({ sub: `svc-${i}`, roles: ["reader"], exp }).setProtectedHeader({ alg }).sign(key.privateKey)));
  const cached = await JwtVerifier.load({ publicKeyFiles: [pem], clockSkewSeconds: 30, principalClaim: "sub", rolesClaim: "roles" });
  await measure(`JwtVerifier.verify ${alg} (cached, 100 tokens)`, (i) => cached.verify(tokens[i % 100]));
  const uncached = await JwtVerifier.load({ publicKeyFiles: [pem], clockSkewSeconds: 30, principalClaim: "sub", rolesClaim: "roles", cacheSize: 0 });
  await measure(`JwtVerifier.verify ${alg} (no cache)`, (i) => uncached.verify(tokens[i % 100]));
}
