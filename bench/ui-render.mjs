#!/usr/bin/env node
// The dashboard under one big service: N instances registered (Connect JSON
// over plain fetch, 1-hour leases), then the page in Debian's Chromium
// (headless, driven by playwright-core; installed with apt-get when
// missing). Measures, `trials` times each (the median is printed with the
// range):
// - load: page.goto /ui/ to the header counting all N instances (the page
//   fetched, parsed, opened its watch and installed the whole snapshot);
// - show: a click on the service to its table listing N rows;
// - scroll: a scroll of SCROLL_S seconds, the viewport moved by 10 rows every
//   animation frame, then 100 random jumps, one per frame: the time between
//   frames (requestAnimationFrame, in the page), p50/p95/max, and the frames
//   over the 16.7 ms budget of a 60 Hz screen;
// - live: 1,000 instances of the service drained one by one while it is
//   shown, from the first SetOperatorStatus call to the page showing the
//   last one DRAINING.
// The DOM rows in the table are counted too (the table is virtualized).
// Headless Chromium paces frames itself and the 2 cores are shared with the
// server: the figures are for comparing builds, not screens. Writes
// docs/benchmarks/ui-render.json.
//
// Usage: node bench/ui-render.mjs [instances=10000] [trials=3]   (npm run bench:ui builds first)
import { existsSync } from "node:fs";
import { chromium } from "playwright-core";
import { ensureCommand, fmt, startServer, stats, writeResult } from "./support.mjs";

const N = Number(process.argv[2] ?? 10000);
const TRIALS = Number(process.argv[3] ?? 3);
const SCROLL_S = 3;
const LIVE = Math.min(1000, N);
const SERVICE = "maxine.registry.v1.RegistryService";

const executablePath = process.env.MAXINE_CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(executablePath)) ensureCommand("chromium", "chromium");
const server = await startServer({ MAXINE_MAX_INSTANCES_PER_SERVICE: String(Math.max(10000, N)) });
const url = `http://127.0.0.1:${server.port}`;
const call = async (method, body) => {
  const res = await fetch(`${url}/${SERVICE}/${method}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`${method}: HTTP ${res.status} ${await res.text()}`);
};
const id = (i) => `big-${String(i).padStart(5, "0")}`;
let browser;
try {
  const t0 = performance.now();
  for (let next = 0; next < N; ) {
    const batch = [];
    for (let k = 0; k < 50 && next < N; k++, next++) {
      const i = next;
      batch.push(
        call("Register", {
          instance: { service: "big", instanceId: id(i), host: "10.1.0.1", port: 10000 + (i % 50000), zone: `z${i % 3}`, version: `1.${i % 4}`, tags: ["http", i % 2 ? "canary" : "stable"], metadata: { owner: "bench", shard: String(i % 16) } },
          leaseTtl: "3600s",
        }),
      );
    }
    await Promise.all(batch);
  }
  console.log(`registered ${N} instances in ${fmt(performance.now() - t0)}`);

  browser = await chromium.launch({ executablePath, headless: true, args: process.getuid?.() === 0 ? ["--no-sandbox"] : [] });
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // the renderer's own work while scrolling (CDP Performance.getMetrics: seconds spent in script, style and layout)
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const metrics = async () => {
    const { metrics: m } = await cdp.send("Performance.getMetrics");
    const get = (name) => (m.find((x) => x.name === name)?.value ?? 0) * 1000;
    return { script: get("ScriptDuration"), style: get("RecalcStyleDuration"), layout: get("LayoutDuration"), task: get("TaskDuration") };
  };
  const work = { script: 0, style: 0, layout: 0, task: 0, frames: 0 };
  const callsDone = [];
  const load = [];
  const show = [];
  const frames = [];
  const live = [];
  let domRows = 0;
  for (let t = 0; t < TRIALS; t++) {
    let s = performance.now();
    await page.goto(`${url}/ui/`);
    await page.waitForFunction((n) => document.querySelector('[data-field="instances"]')?.textContent === String(n), N, { timeout: 60_000, polling: "raf" });
    load.push(performance.now() - s);

    s = performance.now();
    await page.click('[data-service="big"]');
    await page.waitForFunction((n) => document.querySelector('[data-field="instance-summary"]')?.textContent?.startsWith(`${n} of ${n} rows`), N, { timeout: 60_000, polling: "raf" });
    show.push(performance.now() - s);
    domRows = await page.locator(".viewport [role=row]").count();

    const before = await metrics();
    const gaps = await page.evaluate(async (seconds) => {
      const vp = document.querySelector(".viewport");
      const out = [];
      let last = performance.now();
      const end = last + seconds * 1000;
      let jumps = 0;
      await new Promise((resolve) => {
        const step = (now) => {
          out.push(now - last);
          last = now;
          if (now < end) vp.scrollTop += 280;
          else if (jumps++ < 100) vp.scrollTop = Math.random() * vp.scrollHeight;
          else return resolve();
          requestAnimationFrame(step);
        };
        requestAnimationFrame((now) => {
          last = now;
          requestAnimationFrame(step);
        });
      });
      return out;
    }, SCROLL_S);
    frames.push(...gaps);
    const after = await metrics();
    for (const k of Object.keys(before)) work[k] += after[k] - before[k];
    work.frames += gaps.length;

    // live: drain LIVE instances while the service is shown
    await page.evaluate(() => (document.querySelector(".viewport").scrollTop = 0));
    const drained = (i) => `big-${String(i).padStart(5, "0")}`;
    const status = t % 2 === 0 ? "OPERATOR_STATUS_DRAINING" : "OPERATOR_STATUS_UNSPECIFIED";
    const want = t % 2 === 0 ? `${LIVE} draining` : "0 draining";
    s = performance.now();
    for (let i = 0; i < LIVE; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, LIVE - i) }, (_, k) => call("SetOperatorStatus", { key: { service: "big", instanceId: drained(i + k) }, status })));
    }
    callsDone.push(performance.now() - s);
    await page.waitForFunction((w) => document.querySelector('[data-field="instance-summary"]')?.textContent?.includes(`, ${w},`), want, { timeout: 60_000, polling: "raf" });
    live.push(performance.now() - s);
  }
  if (errors.length > 0) throw new Error(`page errors: ${errors.join("; ")}`);
  const l = stats(load);
  const sh = stats(show);
  const f = stats(frames);
  const cd = stats(callsDone);
  const lag = stats(live.map((ms, i) => ms - callsDone[i]));
  const lv = stats(live);
  const sorted = [...frames].sort((a, b) => a - b);
  const p95 = sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)];
  const over = frames.filter((g) => g > 1000 / 60 + 1).length;
  console.log(`dashboard, one service of ${N} instances, ${TRIALS} trials, headless Chromium ${browser.version()}`);
  console.log(`  load (goto /ui/ to all ${N} instances held):  median ${fmt(l.median)} (${fmt(l.min)}–${fmt(l.max)})`);
  console.log(`  show (click the service to ${N} rows listed):   median ${fmt(sh.median)} (${fmt(sh.min)}–${fmt(sh.max)})`);
  console.log(`  scroll (${frames.length} frames): frame interval p50 ${fmt(f.median)}, p95 ${fmt(p95)}, max ${fmt(f.max)}; ${over} frames (${((100 * over) / frames.length).toFixed(1)} %) over 16.7 ms`);
  const per = (ms) => `${(ms / work.frames).toFixed(2)} ms`;
  console.log(`  renderer work per scroll frame (CDP metrics): script ${per(work.script)}, style ${per(work.style)}, layout ${per(work.layout)}, all tasks ${per(work.task)}`);
  console.log(`  live (${LIVE} SetOperatorStatus calls, 50 at a time, to the page showing them all): median ${fmt(lv.median)} (${fmt(lv.min)}–${fmt(lv.max)}); the calls alone took median ${fmt(cd.median)}; the page showed the last change ${fmt(lag.median)} (median) after the last call answered`);
  console.log(`  DOM rows in the table: ${domRows} (of ${N} instances)`);
  writeResult("ui-render", {
    scenario: "dashboard with one big service",
    instances: N,
    trials: TRIALS,
    chromium: browser.version(),
    load_ms: l,
    show_ms: sh,
    frame_interval_ms: { ...f, p95, over_budget: over },
    renderer_ms_per_scroll_frame: { script: work.script / work.frames, style: work.style / work.frames, layout: work.layout / work.frames, task: work.task / work.frames },
    live_calls_ms: cd,
    live_page_lag_ms: lag,
    live_ms: { ...lv, changes: LIVE },
    dom_rows: domRows,
  });
} finally {
  await browser?.close();
  await server.stop();
}
