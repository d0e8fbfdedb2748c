import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../../server/src/app.js";
import { postJson, startInProcess } from "../../server/test/support/in-process.js";
import { launchChromium } from "./support/chromium.js";

// The dashboard's configuration panel in a real Chromium: the chosen
// service's keys, live; a key's value and its last change as a diff; an
// edit saved with compare-and-set, and refused when the key changed
// meanwhile.

const dir = mkdtempSync(join(tmpdir(), "maxine-ui-config-"));
let browser: Browser;
let page: Page;
let server: Maxine & { url: string };
const consoleErrors: string[] = [];

async function putConfig(service: string, key: string, value: string): Promise<any> {
  const res = await fetch(`${server.url}/maxine.config.v1.ConfigService/Put`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ service, key, value: Buffer.from(value).toString("base64") }),
  });
  expect(res.status).toBe(200);
  return res.json();
}

beforeAll(async () => {
  server = await startInProcess({ MAXINE_DATA_DIR: join(dir, "data") });
  const reg = await postJson(server.url, "Register", { instance: { service: "orders", instanceId: "orders-1", host: "10.0.0.1", port: 8080 }, leaseTtl: "3600s" });
  expect(reg.status).toBe(200);
  await putConfig("orders", "limits.json", '{\n  "max": 5\n}\n');
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the dashboard's configuration panel", () => {
  it("shows the chosen service's keys live, a key's value and last change, and saves an edit with compare-and-set", async () => {
    await page.goto(`${server.url}/ui/`);
    await page.getByRole("button", { name: /^orders\b/ }).click();
    const panel = page.locator("section.config");
    await expect.poll(() => panel.getAttribute("data-allowed")).toBe("yes");
    const key = panel.locator('[data-key="limits.json"]');
    await expect.poll(() => key.textContent()).toMatch(/^limits\.json · v1 · \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ · anonymous$/);

    // a change made elsewhere shows at once
    await putConfig("orders", "limits.json", '{\n  "max": 6\n}\n');
    await expect.poll(() => key.textContent()).toMatch(/^limits\.json · v2 /);

    await key.click();
    await expect.poll(() => panel.getByLabel("Value").inputValue()).toBe('{\n  "max": 6\n}\n');
    await expect.poll(() => panel.locator('[data-field="config-diff"]').textContent()).toBe('--- version 1\n+++ version 2\n {\n-  "max": 5\n+  "max": 6\n }');

    await panel.getByLabel("Value").fill('{\n  "max": 7\n}\n');
    await panel.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => panel.locator("output").textContent()).toBe("limits.json: saved as version 3");
    await expect.poll(() => key.textContent()).toMatch(/^limits\.json · v3 /);

    // someone else writes version 4; saving over version 3 is refused and says why
    await putConfig("orders", "limits.json", '{\n  "max": 8\n}\n');
    await panel.getByLabel("Value").fill('{\n  "max": 9\n}\n');
    await panel.getByRole("button", { name: "Save" }).click();
    await expect.poll(() => panel.locator("output").textContent()).toMatch(/^not saved: the key changed meanwhile \(expected_version: key default\/orders\/limits\.json is at version 4, expected 3/);
    const latest: any = await (await fetch(`${server.url}/maxine.config.v1.ConfigService/Get`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ service: "orders", key: "limits.json" }) })).json();
    expect(Buffer.from(latest.entry.value, "base64").toString()).toBe('{\n  "max": 8\n}\n');
    expect(consoleErrors).toEqual([]);
  });
});
