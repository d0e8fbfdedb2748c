import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcClient, unary } from "./support/grpc-client.js";
import { healthClient } from "./support/health-client.js";
import { startInProcess } from "./support/in-process.js";

// With authentication on, grpc.health.v1 is served without credentials by
// default (MAXINE_AUTH_PUBLIC_SERVICES), so probes need no token, while the
// registry and reflection ask for one; emptying the setting puts health
// behind authentication too. The same interceptor decides for every service.

const TOKEN = "tok-probe-3c9e1f7a5b";
let dir: string;
let auth: Record<string, string>;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "maxine-health-auth-"));
  writeFileSync(join(dir, "tokens"), `ops sha256:${createHash("sha256").update(TOKEN).digest("hex")} reader\n`);
  writeFileSync(join(dir, "policy.yaml"), 'roles:\n  reader:\n    - { permissions: [read], namespaces: ["*"], services: ["*"] }\n');
  auth = { MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"), MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml") };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bearer = (): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${TOKEN}`);
  return md;
};
const check = (client: grpc.Client & Record<string, any>, md = new grpc.Metadata()) =>
  new Promise<{ status: string }>((resolve, reject) => client.Check({ service: "" }, md, (err: grpc.ServiceError | null, res: { status: string }) => (err ? reject(err) : resolve(res))));

describe("grpc.health.v1 with authentication on", () => {
  it("answers probes without credentials by default; the registry and reflection still need them", async () => {
    const server = await startInProcess(auth);
    const health = healthClient(server.port);
    const registry = grpcClient(server.port);
    try {
      expect(await check(health)).toEqual({ status: "SERVING" });
      await expect(unary(registry, "ListServices", {})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      const reflect = await fetch(`${server.url}/grpc.reflection.v1.ServerReflection/ServerReflectionInfo`, {
        method: "POST",
        headers: { "content-type": "application/connect+json" },
        body: new Uint8Array([0, 0, 0, 0, 2, 0x7b, 0x7d]),
      });
      const text = await reflect.text();
      expect(text).toContain("unauthenticated");
    } finally {
      health.close();
      registry.close();
      await server.close();
    }
  });

  it("asks probes for credentials too when MAXINE_AUTH_PUBLIC_SERVICES is empty", async () => {
    const server = await startInProcess({ ...auth, MAXINE_AUTH_PUBLIC_SERVICES: "" });
    const health = healthClient(server.port);
    try {
      await expect(check(health)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      expect(await check(health, bearer())).toEqual({ status: "SERVING" });
    } finally {
      health.close();
      await server.close();
    }
  });
});
