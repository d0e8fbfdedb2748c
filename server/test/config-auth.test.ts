import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { envelope, JsonStream, startInProcess } from "./support/in-process.js";

// Authorization of ConfigService through the real server (tokens and a
// policy file): config_read and config_write per namespace and service
// pattern, apart from the registry's read/register, implied by admin.

const dir = mkdtempSync(join(tmpdir(), "maxine-config-auth-"));
const sha = (t: string) => createHash("sha256").update(t).digest("hex");
const TOKENS = {
  writer: "tok-cfg-writer-1b2c3d",
  reader: "tok-cfg-reader-4e5f6a",
  discovery: "tok-discovery-7b8c9d",
  admin: "tok-cfg-admin-0a1b2c",
} as const;
const SERVICE = "maxine.config.v1.ConfigService";
const logs: string[] = [];

async function call(url: string, method: string, body: unknown, token?: string): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/${SERVICE}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

const v = (s: string) => Buffer.from(s).toString("base64");

describe("ConfigService authorization", () => {
  let server: Maxine & { url: string };
  beforeAll(async () => {
    writeFileSync(
      join(dir, "tokens"),
      [
        `writer sha256:${sha(TOKENS.writer)} payments-config`,
        `reader sha256:${sha(TOKENS.reader)} config-reader`,
        `discovery sha256:${sha(TOKENS.discovery)} discovery`,
        `root sha256:${sha(TOKENS.admin)} admin`,
      ].join("\n") + "\n",
    );
    writeFileSync(
      join(dir, "policy.yaml"),
      `roles:
  payments-config:
    - { permissions: [config_write], namespaces: [prod], services: ["payments*"] }
  config-reader:
    - { permissions: [config_read], namespaces: [prod], services: ["payments*", "orders"] }
  discovery:
    - { permissions: [register], namespaces: ["*"], services: ["*"] }
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
`,
    );
    const logger = { info: (o: unknown, m?: string) => logs.push(JSON.stringify([o, m])), warn: () => {}, error: () => {}, debug: () => {} } as never;
    server = await startInProcess(
      { MAXINE_DATA_DIR: join(dir, "data"), MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"), MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml") },
      { logger },
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("no credential: unauthenticated", async () => {
    expect((await call(server.url, "Get", { namespace: "prod", service: "payments", key: "k" })).json.code).toBe("unauthenticated");
  });

  it("config_write on prod/payments*: writes there and reads what it writes; nothing elsewhere", async () => {
    const put = await call(server.url, "Put", { namespace: "prod", service: "payments-api", key: "k", value: v("1") }, TOKENS.writer);
    expect(put.status).toBe(200);
    expect(put.json.entry.principal).toBe("writer");
    expect((await call(server.url, "Get", { namespace: "prod", service: "payments-api", key: "k" }, TOKENS.writer)).status).toBe(200);
    const elsewhere = await call(server.url, "Put", { namespace: "prod", service: "orders", key: "k", value: v("1") }, TOKENS.writer);
    expect(elsewhere.json).toEqual({ code: "permission_denied", message: 'permission denied: principal "writer" lacks the config_write permission on prod/orders' });
    expect((await call(server.url, "Put", { namespace: "staging", service: "payments-api", key: "k", value: v("1") }, TOKENS.writer)).json.code).toBe("permission_denied");
  });

  it("config_read: Get, List, History and Watch, but no Put, Delete or Rollback", async () => {
    await call(server.url, "Put", { namespace: "prod", service: "orders", key: "k", value: v("o") }, TOKENS.admin);
    for (const [method, body] of [
      ["Get", { namespace: "prod", service: "orders", key: "k" }],
      ["List", { namespace: "prod", service: "orders" }],
      ["History", { namespace: "prod", service: "orders", key: "k" }],
    ] as const) {
      expect((await call(server.url, method, body, TOKENS.reader)).status, method).toBe(200);
    }
    for (const [method, body] of [
      ["Put", { namespace: "prod", service: "orders", key: "k", value: v("x") }],
      ["Delete", { namespace: "prod", service: "orders", key: "k" }],
      ["Rollback", { namespace: "prod", service: "orders", key: "k", toVersion: "1" }],
    ] as const) {
      expect((await call(server.url, method, body, TOKENS.reader)).json, method).toEqual({
        code: "permission_denied",
        message: 'permission denied: principal "reader" lacks the config_write permission on prod/orders',
      });
    }
  });

  it("the registry's permissions below admin give no configuration access; admin gives all", async () => {
    expect((await call(server.url, "Get", { namespace: "prod", service: "orders", key: "k" }, TOKENS.discovery)).json).toEqual({
      code: "permission_denied",
      message: 'permission denied: principal "discovery" lacks the config_read permission on prod/orders',
    });
    expect((await call(server.url, "Delete", { namespace: "prod", service: "orders", key: "k" }, TOKENS.admin)).status).toBe(200);
  });

  it("a namespace-wide Watch holds only the services the principal may read; one without any rule there is refused", async () => {
    await call(server.url, "Put", { namespace: "prod", service: "payments", key: "k", value: v("p") }, TOKENS.admin);
    await call(server.url, "Put", { namespace: "prod", service: "secrets", key: "k", value: v("s") }, TOKENS.admin);
    const ac = new AbortController();
    const res = await fetch(`${server.url}/${SERVICE}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${TOKENS.reader}` },
      body: envelope({ namespace: "prod" }),
      signal: ac.signal,
    });
    const s = new JsonStream(res);
    const snap = await s.next();
    expect(snap.snapshot.entries.map((e: any) => e.service).sort()).toEqual(["payments", "payments-api"]);
    await call(server.url, "Put", { namespace: "prod", service: "secrets", key: "k2", value: v("s") }, TOKENS.admin);
    await call(server.url, "Put", { namespace: "prod", service: "payments", key: "k2", value: v("p") }, TOKENS.admin);
    expect((await s.next()).snapshotEnd).toBeDefined();
    const ev = await s.next();
    expect(ev.event.entry).toMatchObject({ service: "payments", key: "k2" });
    ac.abort();
    await s.cancel();
    const refused = await fetch(`${server.url}/${SERVICE}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${TOKENS.reader}` },
      body: envelope({ namespace: "staging" }),
    });
    const r = new JsonStream(refused);
    expect(await r.next()).toBeUndefined();
    expect(r.end.error).toMatchObject({ code: "permission_denied", message: expect.stringContaining("lacks the config_read permission on any service of namespace staging") });
  });

  it("a policy reload ends open configuration watches with UNAVAILABLE; they resume under the new policy", async () => {
    const ac = new AbortController();
    const res = await fetch(`${server.url}/${SERVICE}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${TOKENS.reader}` },
      body: envelope({ namespace: "prod", services: ["orders"] }),
      signal: ac.signal,
    });
    const s = new JsonStream(res);
    while ((await s.next())?.snapshotEnd === undefined);
    const policy = join(dir, "policy.yaml");
    writeFileSync(policy, readFileSync(policy, "utf8").replace('services: ["payments*", "orders"]', 'services: ["payments*"]'));
    expect(await server.reloadAuth()).toBe(true);
    expect(await s.next()).toBeUndefined();
    expect(s.end.error).toMatchObject({ code: "unavailable", message: expect.stringContaining("access policy changed") });
    // the resume, under the new policy: orders is no longer readable
    const again = await fetch(`${server.url}/${SERVICE}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", authorization: `Bearer ${TOKENS.reader}` },
      body: envelope({ namespace: "prod", services: ["orders"] }),
    });
    const r = new JsonStream(again);
    expect(await r.next()).toBeUndefined();
    expect(r.end.error).toMatchObject({ code: "permission_denied" });
    ac.abort();
  });

  it("writes and refusals are audited with the principal; no token reaches a log line", async () => {
    expect(logs.some((l) => l.includes('"method":"Put"') && l.includes('"principal":"writer"') && l.includes('"config write"'))).toBe(true);
    // a refusal too: the reader's Put on prod/orders, with the reason
    expect(logs.some((l) => l.includes('"method":"Put"') && l.includes('"principal":"reader"') && l.includes('"refused":"PERMISSION_DENIED"') && l.includes("config write refused"))).toBe(true);
    for (const t of Object.values(TOKENS)) expect(logs.join("\n")).not.toContain(t);
  });
});
