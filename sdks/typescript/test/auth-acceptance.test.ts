import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMaxineClient } from "../src/client.js";
import { Session } from "../src/session.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Scope } from "./support/scope.js";
import { startTestServer } from "./support/sdk-server.js";
import { delay, waitFor } from "./support/wait.js";

// The SDK's credentials accepted (and refused) end to end: the real server
// with a tokens file and a policy authenticates each call, and owns the
// instances a session registers to the token's principal.

const TOKENS = { writer: "tok-ts-writer-3f9a1c", reader: "tok-ts-reader-8b2e4d", root: "tok-ts-root-5c7d0e" } as const;
const sha = (t: string) => createHash("sha256").update(t).digest("hex");
const dir = mkdtempSync(join(tmpdir(), "maxine-sdk-auth-"));
let server: ServerProcess;
const scope = new Scope();

beforeAll(async () => {
  writeFileSync(
    join(dir, "tokens"),
    [`svc-payments sha256:${sha(TOKENS.writer)} writer`, `dashboard sha256:${sha(TOKENS.reader)} reader`, `root sha256:${sha(TOKENS.root)} admin`].join("\n") + "\n",
  );
  writeFileSync(
    join(dir, "policy.yaml"),
    `roles:
  writer:
    - { permissions: [register], namespaces: ["*"], services: ["payments*"] }
  reader:
    - { permissions: [read], namespaces: ["*"], services: ["*"] }
  admin:
    - { permissions: [admin], namespaces: ["*"], services: ["*"] }
`,
  );
  server = await startTestServer({ MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"), MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml") });
});
afterEach(() => scope.close());
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("credentials accepted by a server with a tokens file and a policy", () => {
  it("a session registers and heartbeats with a valid token, and the instance belongs to the token's principal", async () => {
    const session = scope.defer(new Session(createMaxineClient({ baseUrl: server.url, token: TOKENS.writer })), (s) => s.close());
    const errors: unknown[] = [];
    session.on("error", (e) => errors.push(e));
    await session.register({ service: "payments", instanceId: "p-1", host: "127.0.0.1", port: 8080 }, { ttlMs: 300 });
    // several TTLs: only the session's beats keep it
    await delay(1_000);
    const admin = createMaxineClient({ baseUrl: server.url, token: TOKENS.root });
    const found = await admin.discover({ service: "payments", includeAll: true });
    expect(found.instances.map((i) => [i.instanceId, i.owner])).toEqual([["p-1", "svc-payments"]]);
    expect(errors).toEqual([]);
  });

  it("a wrong token or none is UNAUTHENTICATED, with the server's reason and without the token", async () => {
    const wrong = new Session(createMaxineClient({ baseUrl: server.url, token: "tok-not-issued-4242" }));
    scope.defer(wrong, (s) => s.close());
    const err = await wrong.register({ service: "payments", instanceId: "p-2", host: "127.0.0.1", port: 1 }).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.Unauthenticated, rawMessage: expect.stringContaining("the bearer token is not one this server knows") });
    expect(String(err)).not.toContain("tok-not-issued-4242");
    const none = await createMaxineClient({ baseUrl: server.url })
      .listServices({})
      .catch((e: unknown) => ConnectError.from(e));
    expect(none).toMatchObject({ code: Code.Unauthenticated, rawMessage: expect.stringContaining("no credentials") });
    // a read-only token may not register: PERMISSION_DENIED naming the permission
    const reader = createMaxineClient({ baseUrl: server.url, token: TOKENS.reader });
    const denied = await reader.register({ instance: { service: "payments", instanceId: "p-3", host: "127.0.0.1", port: 1 } }).catch((e: unknown) => ConnectError.from(e));
    expect(denied).toMatchObject({ code: Code.PermissionDenied, rawMessage: expect.stringContaining("lacks the register permission") });
  });

  it("a per-call token function is asked for every call and the heartbeat stream, and is accepted", async () => {
    let asked = 0;
    const client = createMaxineClient({ baseUrl: server.url, token: () => (asked++, TOKENS.writer) });
    const session = scope.defer(new Session(client), (s) => s.close());
    await session.register({ service: "payments-eu", instanceId: "e-1", host: "127.0.0.1", port: 1 }, { ttlMs: 300 });
    await delay(600);
    expect(asked).toBeGreaterThanOrEqual(2); // Register, then the Heartbeat stream
    const found = await createMaxineClient({ baseUrl: server.url, token: TOKENS.reader }).discover({ service: "payments-eu", includeAll: true });
    expect(found.instances.map((i) => [i.instanceId, i.owner])).toEqual([["e-1", "svc-payments"]]);
  });

  it("a watcher with a read-only token sees changes", async () => {
    const watcher = scope.defer(new Watcher(createMaxineClient({ baseUrl: server.url, token: TOKENS.reader }), { services: "payments-us" }), (w) => w.close());
    await watcher.ready();
    const added: string[] = [];
    watcher.on("added", (c) => added.push(c.instance.instanceId));
    const writer = createMaxineClient({ baseUrl: server.url, token: TOKENS.writer });
    await writer.register({ instance: { service: "payments-us", instanceId: "u-1", host: "127.0.0.1", port: 1 } });
    await waitFor(() => added.includes("u-1"), "the watcher's ADDED event");
    expect(watcher.instances("payments-us").map((i) => i.owner)).toEqual(["svc-payments"]);
  });
});
