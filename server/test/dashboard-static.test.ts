import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { startInProcess } from "./support/in-process.js";

// The dashboard's files (MAXINE_UI): served at /ui/ from memory on the
// server's one port, HTTP/1.1 and HTTP/2, with caching headers, behind the
// same Host and CORS checks as every request; the page's own origin may
// call the API. These tests serve a small build of their own (uiDir), so
// they do not depend on `npm run build`; ui/test/dashboard.test.ts runs the
// real page in Chromium.

const SERVICE = "maxine.registry.v1.RegistryService";
const INDEX = `<!doctype html><title>t</title><script type="module" src="assets/main-ABC123.js"></script>`;
const SCRIPT = "console.log('dashboard');\n";

let dir: string;
const servers: Maxine[] = [];
const sessions: http2.ClientHttp2Session[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "maxine-ui-"));
  await mkdir(join(dir, "assets"));
  await writeFile(join(dir, "index.html"), INDEX);
  await writeFile(join(dir, "assets", "main-ABC123.js"), SCRIPT);
});

afterEach(async () => {
  for (const s of sessions.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function start(env: Record<string, string> = {}, uiDir: string = dir): Promise<Maxine & { url: string }> {
  const m = await startInProcess(env, { uiDir });
  servers.push(m);
  return m;
}

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** h1 sends one HTTP/1.1 request with exactly the headers given. */
function h1(port: number, method: string, path: string, headers: Record<string, string> = { host: "127.0.0.1" }, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** h2 sends one request on an HTTP/2 cleartext session. */
function h2(port: number, headers: http2.OutgoingHttpHeaders, body?: string): Promise<Answer> {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  sessions.push(s);
  return new Promise((resolve, reject) => {
    const req = s.request(headers);
    let head: http2.IncomingHttpHeaders = {};
    let text = "";
    req.on("response", (h) => (head = h));
    req.on("data", (d: Buffer) => (text += d.toString()));
    req.on("end", () => resolve({ status: Number(head[":status"]), headers: head as http.IncomingHttpHeaders, body: text }));
    req.on("error", reject);
    req.end(body);
  });
}

describe("the dashboard's files at /ui/ (MAXINE_UI)", () => {
  it("serves the page revalidated and hashed assets immutable, over HTTP/1.1 and HTTP/2", async () => {
    const m = await start();
    for (const get of [(p: string, h: Record<string, string> = {}) => h1(m.port, "GET", p, { host: "127.0.0.1", ...h }), (p: string, h: Record<string, string> = {}) => h2(m.port, { ":path": p, ...h })]) {
      const index = await get("/ui/");
      expect(index.status).toBe(200);
      expect(index.body).toBe(INDEX);
      expect(index.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(index.headers["cache-control"]).toBe("no-cache");
      expect(index.headers["content-security-policy"]).toContain("connect-src 'self'");
      expect(index.headers["x-content-type-options"]).toBe("nosniff");
      const etag = String(index.headers.etag);
      expect(etag).toMatch(/^"[\w-]{22}"$/);
      const again = await get("/ui/", { "if-none-match": etag });
      expect(again.status).toBe(304);
      expect(again.body).toBe("");
      expect((await get("/ui/index.html?x=1")).body).toBe(INDEX);

      const asset = await get("/ui/assets/main-ABC123.js");
      expect(asset.status).toBe(200);
      expect(asset.body).toBe(SCRIPT);
      expect(asset.headers["content-type"]).toBe("text/javascript; charset=utf-8");
      expect(asset.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(asset.headers["content-length"]).toBe(String(SCRIPT.length));

      const bare = await get("/ui");
      expect(bare.status).toBe(308);
      expect(bare.headers.location).toBe("/ui/");
      const missing = await get("/ui/assets/nope.js");
      expect(missing.status).toBe(404);
      expect(missing.body).toContain("not a file of the dashboard");
      // only the files read at startup are served: no path reaches the disk
      for (const p of ["/ui/..%2Fpackage.json", "/ui/%2e%2e/%2e%2e/package.json", "/ui/assets/../../package.json"]) {
        expect((await get(p)).status, p).toBe(404);
      }
    }
  });

  it("answers HEAD without a body and refuses other methods", async () => {
    const m = await start();
    const head = await h1(m.port, "HEAD", "/ui/");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    expect(head.headers["content-length"]).toBe(String(INDEX.length));
    const post = await h1(m.port, "POST", "/ui/", { host: "127.0.0.1", "content-type": "text/plain" }, "x");
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD");
  });

  it("is off with MAXINE_UI=off: /ui/ is not found", async () => {
    const m = await start({ MAXINE_UI: "off" });
    const res = await h1(m.port, "GET", "/ui/");
    expect(res.status).toBe(404);
    expect(res.body).toContain("not found: Maxine serves");
  });

  it("says the page is not built when its directory has no index.html, and the server still starts", async () => {
    const m = await start({}, join(dir, "no-such-build"));
    const res = await h1(m.port, "GET", "/ui/");
    expect(res.status).toBe(404);
    expect(res.body).toContain("the dashboard is not built");
    expect(res.body).toContain("npm run build");
    expect(res.body).not.toContain(dir); // no server path in an answer
  });

  it("keeps the Host check: a loopback server refuses /ui/ under a foreign name (DNS rebinding)", async () => {
    const m = await start();
    const res = await h1(m.port, "GET", "/ui/", { host: "rebind.evil.example:7400" });
    expect(res.status).toBe(403);
    expect(res.body).not.toContain("<title>");
    expect((await h2(m.port, { ":path": "/ui/", ":authority": "rebind.evil.example" })).status).toBe(403);
  });

  it("lets the page's own origin call the API, and still refuses any other origin (and its own with MAXINE_UI=off)", async () => {
    const m = await start();
    const own = `http://127.0.0.1:${m.port}`;
    const call = (port: number, origin: string, host = `127.0.0.1:${port}`) =>
      h1(port, "POST", `/${SERVICE}/ListServices`, { host, origin, "content-type": "application/json" }, "{}");
    const ok = await call(m.port, own);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({ registryId: expect.any(String) });
    // same-origin needs no CORS headers
    expect(ok.headers["access-control-allow-origin"]).toBeUndefined();
    expect((await call(m.port, `http://localhost:${m.port}`, `localhost:${m.port}`)).status).toBe(200);
    const h2ok = await h2(m.port, { ":method": "POST", ":path": `/${SERVICE}/ListServices`, origin: own, "content-type": "application/json" }, "{}");
    expect(h2ok.status).toBe(200);
    // another port, scheme or host is another origin
    for (const origin of [`http://127.0.0.1:${m.port + 1}`, `https://127.0.0.1:${m.port}`, "http://evil.example", `http://127.0.0.1:${m.port}.evil.example`]) {
      const res = await call(m.port, origin);
      expect(res.status, origin).toBe(403);
      expect(JSON.parse(res.body)).toMatchObject({ code: "permission_denied", message: expect.stringContaining("MAXINE_CORS_ORIGINS") });
    }
    const off = await start({ MAXINE_UI: "off" });
    expect((await call(off.port, `http://127.0.0.1:${off.port}`)).status).toBe(403);
  });

  it("reports in /healthz what the page's header shows and no stream carries", async () => {
    const m = await start();
    const res = await h1(m.port, "GET", "/healthz");
    expect(JSON.parse(res.body)).toMatchObject({ status: "serving", storeKind: "memory", heartbeatStreams: 0, watchers: 0, registryId: expect.any(String) });
  });
});
