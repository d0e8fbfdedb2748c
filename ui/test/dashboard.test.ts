import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../../server/src/app.js";
import { freePortForTest } from "../../server/test/support/free-port.js";
import { postJson, startInProcess } from "../../server/test/support/in-process.js";
import { launchChromium } from "./support/chromium.js";

// The dashboard in a real Chromium (Debian's, driven by playwright-core):
// the page Maxine serves at /ui/ watches the registry over Connect-Web and
// shows what happens to it. Timing bounds here are the promises
// (a Register shows within 1 s, a crash within grace + 1 s), not
// measurements: bench/ui-render.mjs measures.

const SESSION_CHILD = fileURLToPath(new URL("../../server/test/fixtures/session-child.mjs", import.meta.url));
const GRACE_MS = 1000;
const ENV = { MAXINE_GRACE: `${GRACE_MS}ms` };
const HOUR = "3600s";

let browser: Browser;
let page: Page;
let server: Maxine & { url: string };
let port: number;
const consoleErrors: string[] = [];
const children: ChildProcess[] = [];

async function register(service: string, id: string, extra: Record<string, unknown> = {}): Promise<void> {
  const res = await postJson(server.url, "Register", { instance: { service, instanceId: id, host: "10.0.0.1", port: 8080, ...extra }, leaseTtl: HOUR });
  expect(res.status, JSON.stringify(res.json)).toBe(200);
}

/** statusCell is the Status cell of an instance's row. */
const statusCell = (id: string) => page.locator(`[role=row][data-id="${id}"] [role=cell]`).nth(6);

/** selectService clicks a service in the list (as a person would) and waits for its table. */
async function selectService(service: string): Promise<void> {
  await page.getByRole("button", { name: new RegExp(`^${service}\\b`) }).click();
  await expect.poll(() => page.locator("#instances-title").textContent()).toBe(`Instances of ${service}`);
}

beforeAll(async () => {
  port = await freePortForTest();
  server = await startInProcess({ ...ENV, MAXINE_PORT: String(port) });
  await register("orders", "orders-1", { zone: "eu-1", version: "1.4.2", tags: ["canary", "http"], metadata: { owner: "team-a" }, weight: 100 });
  await register("orders", "orders-2", { zone: "eu-2", version: "1.4.2", tags: ["http"], metadata: { owner: "team-a" }, weight: 50 });
  await register("payments", "payments-1", { zone: "eu-1", version: "2.0.0" });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? once(c, "exit") : undefined)));
  await browser?.close();
  await server?.close();
});

describe("the dashboard in Chromium", () => {
  it("loads from /ui/ with no console errors and shows the registry", async () => {
    const res = await page.goto(`${server.url}/ui/`);
    expect(res?.status()).toBe(200);
    const registryId = ((await (await fetch(`${server.url}/healthz`)).json()) as { registryId: string }).registryId;
    await expect.poll(() => page.locator('[data-field="registry"]').textContent()).toBe(registryId);
    await expect.poll(() => page.locator('[data-field="health"]').textContent()).toBe("serving");
    await expect.poll(() => page.locator('[data-field="store"]').textContent()).toBe("memory");
    await expect.poll(() => page.locator('[data-field="instances"]').textContent()).toBe("3");
    await expect.poll(() => page.locator('[data-service="orders"] .counts').textContent()).toBe("2 instances · 2 serving");
    await selectService("orders");
    await expect(statusCell("orders-1").textContent()).resolves.toBe("SERVING");
    // the lease deadline comes from Discover include_all
    await expect.poll(() => page.locator('[role=row][data-id="orders-1"] [role=cell]').nth(9).textContent()).toMatch(/^59m \d+s$/);
    expect(consoleErrors).toEqual([]);
  });

  it("shows a Register within 1 s", async () => {
    const t0 = Date.now();
    await register("orders", "orders-3", { zone: "us-1", version: "1.5.0", tags: ["http"] });
    await page.locator('[role=row][data-id="orders-3"]').waitFor({ state: "visible", timeout: 1000 });
    expect(Date.now() - t0).toBeLessThan(1000);
    await expect.poll(() => page.locator(".feed li.ev").first().textContent()).toContain("ADDED");
    // the events-per-second chart counted it
    await expect.poll(() => page.getByRole("img", { name: /^Events per second/ }).getAttribute("aria-label"), { timeout: 3000 }).toMatch(/at most [1-9]\d*$/);
  });

  it("shows a SIGKILLed session's instance REMOVED (stream closed) within grace + 1 s, then fades it out", async () => {
    const child = spawn(process.execPath, [SESSION_CHILD, server.url, "orders", "orders-crash", "10000"], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    const lines = createInterface({ input: child.stdout! });
    const [line] = (await once(lines, "line")) as [string];
    expect(line).toBe("ready");
    await page.locator('[role=row][data-id="orders-crash"]').waitFor({ state: "visible", timeout: 1000 });
    child.kill("SIGKILL");
    const t0 = Date.now();
    await once(child, "exit");
    lines.close();
    await expect.poll(() => statusCell("orders-crash").textContent(), { timeout: GRACE_MS + 1000, interval: 20 }).toBe("REMOVED (stream closed)");
    expect(Date.now() - t0).toBeLessThan(GRACE_MS + 1000);
    await expect.poll(() => page.locator(".feed li.ev").first().textContent()).toContain("stream closed");
    // the removed row fades, then goes (FADE_MS 5 s)
    await page.locator('[role=row][data-id="orders-crash"]').waitFor({ state: "detached", timeout: 8000 });
  });

  it("turns a drained instance's row DRAINING", async () => {
    const res = await postJson(server.url, "SetOperatorStatus", { key: { service: "orders", instanceId: "orders-2" }, status: "OPERATOR_STATUS_DRAINING" });
    expect(res.status).toBe(200);
    await expect.poll(() => statusCell("orders-2").textContent(), { timeout: 1000, interval: 20 }).toBe("DRAINING");
    await expect.poll(() => page.locator('[data-service="orders"] .counts').textContent()).toBe("3 instances · 2 serving · 1 draining");
  });

  it("offers drain, undrain and deregister to a caller who may (on an open server, everyone), acting on the rows", async () => {
    await register("orders", "orders-del", { zone: "eu-1" });
    await selectService("orders");
    const panel = page.getByRole("region", { name: "Instance actions" });
    await expect.poll(() => page.locator("section.actions").getAttribute("data-allowed")).toBe("yes");
    await panel.waitFor({ state: "visible" });
    const id = page.getByLabel("Instance id");
    await id.fill("orders-1");
    await panel.getByRole("button", { name: "Drain", exact: true }).click();
    await expect.poll(() => statusCell("orders-1").textContent()).toBe("DRAINING");
    await expect.poll(() => page.locator("output.action-answer").textContent()).toMatch(/^orders-1: DRAINING \(revision \d+\)$/);
    await panel.getByRole("button", { name: "Undrain", exact: true }).click();
    await expect.poll(() => statusCell("orders-1").textContent()).toBe("SERVING");
    await id.fill("orders-del");
    await panel.getByRole("button", { name: "Deregister", exact: true }).click();
    await expect.poll(() => statusCell("orders-del").textContent()).toBe("REMOVED (deregistered)");
    // a refusal shows in the panel; the browser logs nothing (gRPC-Web answers errors with HTTP 200)
    await id.fill("no-such-instance");
    await panel.getByRole("button", { name: "Drain", exact: true }).click();
    await expect.poll(() => page.locator("output.action-answer").textContent()).toMatch(/^\[not_found\]/);
    expect(consoleErrors).toEqual([]);
  });

  it("answers Try Discover as the RPC does", async () => {
    await page.getByLabel("Service", { exact: true }).fill("orders");
    await page.getByLabel("Strategy").selectOption({ label: "consistent hash" });
    await page.getByLabel("Hash key").fill("user-42");
    await page.getByRole("button", { name: "Discover", exact: true }).click();
    const rpc = await postJson(server.url, "Discover", { service: "orders", strategy: "STRATEGY_CONSISTENT_HASH", hashKey: "user-42" });
    await expect.poll(() => page.locator("output.discover-answer").getAttribute("data-instance")).toBe(rpc.json.instance.instanceId);
    const errorsBefore = consoleErrors.length;
    await page.getByLabel("Filter: zone").fill("nowhere");
    await page.getByRole("button", { name: "Discover", exact: true }).click();
    await expect.poll(() => page.locator("output.discover-answer").textContent()).toMatch(/^\[not_found\]/);
    await page.getByLabel("Filter: zone").fill("");
    // Connect answers NOT_FOUND with HTTP 404, which Chromium logs: the one console error this test causes on purpose
    await expect.poll(() => consoleErrors.slice(errorsBefore)).toEqual(["Failed to load resource: the server responded with a status of 404 (Not Found)"]);
    consoleErrors.splice(errorsBefore);
  });

  it("pauses the event feed", async () => {
    const pause = page.getByRole("button", { name: "Pause" });
    await pause.click();
    const before = await page.locator(".feed li").count();
    await register("orders", "orders-4", { zone: "us-1" });
    await expect.poll(() => page.getByRole("button", { name: /^Resume/ }).textContent()).toBe("Resume (1 new)");
    expect(await page.locator(".feed li").count()).toBe(before);
    await page.getByRole("button", { name: /^Resume/ }).click();
    await expect.poll(() => page.locator(".feed li").count()).toBe(before + 1);
  });

  it("takes the README's screenshot", async () => {
    await page.locator('[role=row][data-id="orders-4"]').waitFor({ state: "visible" });
    const res = await postJson(server.url, "Deregister", { key: { service: "orders", instanceId: "orders-4" } });
    expect(res.status).toBe(200);
    await expect.poll(() => statusCell("orders-4").textContent()).toBe("REMOVED (deregistered)");
    await page.getByRole("button", { name: "Discover", exact: true }).click();
    await expect.poll(() => page.locator("output.discover-answer").getAttribute("data-instance")).toMatch(/^orders-/);
    await page.setViewportSize({ width: 1680, height: 860 });
    const toDocs = process.env.MAXINE_UPDATE_SCREENSHOT === "1";
    const dir = fileURLToPath(new URL(toDocs ? "../../docs/" : "../../.tmp/", import.meta.url));
    mkdirSync(dir, { recursive: true });
    const shot = await page.screenshot({ path: `${dir}dashboard.png` });
    expect(shot.length).toBeGreaterThan(10_000);
    await page.setViewportSize({ width: 1500, height: 900 });
  });

  it("renders 10,000 instances of one service and scrolls them", async () => {
    for (let i = 0; i < 10_000; i++) {
      await server.registry.register({ namespace: "default", service: "big", instanceId: `big-${String(i).padStart(5, "0")}`, host: "10.1.0.1", port: 10_000 + (i % 50_000), zone: `z${i % 3}`, version: "1", tags: [], metadata: {}, weight: 100, status: undefined }, 3_600_000);
    }
    await page.reload();
    await selectService("big");
    await expect.poll(() => page.locator('[data-field="instance-summary"]').textContent(), { timeout: 10_000 }).toMatch(/^10000 of 10000 rows/);
    expect(await page.locator("[role=table]").getAttribute("aria-rowcount")).toBe("10001");
    // virtualized: only the rows in sight (and a few more) exist
    expect(await page.locator(".viewport [role=row]:not([hidden])").count()).toBeLessThan(60);
    await page.locator(".viewport").focus();
    await page.keyboard.press("End");
    await page.locator('[role=row][data-id="big-09999"]').waitFor({ state: "visible", timeout: 2000 });
    await page.locator(".viewport").evaluate((el) => (el.scrollTop = 5000 * 28));
    await page.locator('[role=row][data-id="big-05000"]').waitFor({ state: "visible", timeout: 2000 });
    expect(consoleErrors).toEqual([]);
  });

  it("shows the reconnect banner when the server goes, then the new registry on its restart", async () => {
    const oldId = await page.locator('[data-field="registry"]').textContent();
    await server.close();
    await expect.poll(() => page.locator(".banner").isVisible(), { timeout: 5000 }).toBe(true);
    expect(await page.locator(".banner").textContent()).toMatch(/^Connection lost .*resumes from revision \d+ of registry/);
    server = await startInProcess({ ...ENV, MAXINE_PORT: String(port) });
    const newId = ((await (await fetch(`${server.url}/healthz`)).json()) as { registryId: string }).registryId;
    expect(newId).not.toBe(oldId);
    await expect.poll(() => page.locator('[data-field="registry"]').textContent(), { timeout: 5000 }).toBe(newId);
    await expect.poll(() => page.locator(".banner").isVisible()).toBe(false);
    await expect.poll(() => page.locator(".notice").textContent()).toContain(`The registry changed: now ${newId}`);
    // the new registry is empty: the old one's instances are gone from the page
    await expect.poll(() => page.locator('[data-field="instances"]').textContent()).toBe("0");
  });
});

describe("the dashboard with authentication on", () => {
  const TOKEN = "viewer-token-5f1c2b9e7d";
  const OPERATOR = "operator-token-8a2d41c6e0";
  let dir: string;
  let secured: Maxine & { url: string };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "maxine-ui-auth-"));
    const sha = (t: string): string => createHash("sha256").update(t).digest("hex");
    writeFileSync(join(dir, "tokens"), `viewer sha256:${sha(TOKEN)}\noperator sha256:${sha(OPERATOR)}\n`);
    writeFileSync(
      join(dir, "policy.yaml"),
      'roles:\n  reader:\n    - { permissions: [read], namespaces: ["*"], services: ["*"] }\n  admin:\n    - { permissions: [admin], namespaces: ["*"], services: ["*"] }\nbindings:\n  viewer: [reader]\n  operator: [admin]\n',
    );
    secured = await startInProcess({ MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens"), MAXINE_AUTH_POLICY_FILE: join(dir, "policy.yaml") });
    await secured.registry.register({ namespace: "default", service: "vault", instanceId: "vault-1", host: "10.2.0.1", port: 8200, version: "", zone: "", tags: [], metadata: {}, weight: 100, status: undefined }, 3_600_000);
  });

  afterAll(async () => {
    await secured?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("asks for a token, keeps it in memory only, and sends it as a bearer token", async () => {
    const context = await browser.newContext();
    try {
      const p = await context.newPage();
      const errors: string[] = [];
      p.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      await p.goto(`${secured.url}/ui/`);
      const input = p.getByLabel("Bearer token (kept in this page's memory only)");
      await input.waitFor({ state: "visible" });
      expect(await p.locator("form.token p").textContent()).toMatch(/^This server needs a token: /);
      // the only console errors are the calls the server refused (401) before a token was given
      expect(errors.length).toBeGreaterThan(0);
      for (const e of errors) expect(e).toBe("Failed to load resource: the server responded with a status of 401 (Unauthorized)");
      await input.fill(TOKEN);
      await p.getByRole("button", { name: "Use token" }).click();
      await p.getByRole("button", { name: /^vault\b/ }).waitFor({ state: "visible", timeout: 5000 });
      await expect.poll(() => p.locator('[data-field="instances"]').textContent()).toBe("1");
      expect(await p.locator("form.token").isVisible()).toBe(false);
      // nowhere but in memory: no storage, cookie or URL holds it
      const kept = await p.evaluate(() => {
        const w = globalThis as unknown as { localStorage: { length: number }; sessionStorage: { length: number }; document: { cookie: string }; location: { href: string } };
        return { local: w.localStorage.length, session: w.sessionStorage.length, cookie: w.document.cookie, href: w.location.href };
      });
      expect(kept).toEqual({ local: 0, session: 0, cookie: "", href: `${secured.url}/ui/` });
      expect((await context.cookies()).length).toBe(0);
      // a reader may not change instances: no actions
      await p.getByRole("button", { name: /^vault\b/ }).click();
      await expect.poll(() => p.locator("section.actions").getAttribute("data-allowed")).toBe("no");
      expect(await p.locator("section.actions").isVisible()).toBe(false);
      // a reload forgets it
      await p.reload();
      await input.waitFor({ state: "visible" });
    } finally {
      await context.close();
    }
  });

  it("offers the instance actions to an admin's token, and they act", async () => {
    const context = await browser.newContext();
    try {
      const p = await context.newPage();
      await p.goto(`${secured.url}/ui/`);
      await p.getByLabel("Bearer token (kept in this page's memory only)").fill(OPERATOR);
      await p.getByRole("button", { name: "Use token" }).click();
      await p.getByRole("button", { name: /^vault\b/ }).click();
      await expect.poll(() => p.locator("section.actions").getAttribute("data-allowed")).toBe("yes");
      await p.getByLabel("Instance id").fill("vault-1");
      await p.getByRole("region", { name: "Instance actions" }).getByRole("button", { name: "Drain", exact: true }).click();
      await expect.poll(() => p.locator('[role=row][data-id="vault-1"] [role=cell]').nth(6).textContent()).toBe("DRAINING");
    } finally {
      await context.close();
    }
  });
});
