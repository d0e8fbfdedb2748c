import * as grpc from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";
import http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { checkExposure, isLoopbackHost } from "../src/exposure.js";
import { isLoopbackAuthority } from "../src/transport/http-guard.js";
import { grpcClient, unary } from "./support/grpc-client.js";
import { startInProcess } from "./support/in-process.js";
import { MAIN } from "./support/server-process.js";

// Secure by default: the refusal to serve cleartext without authentication
// beyond loopback (exposure.ts), and the Host (DNS rebinding) and CORS
// checks every request passes in the router (transport/http-guard.ts), on
// every protocol. Nothing here binds an address other than 127.0.0.1.

const SERVICE = "maxine.registry.v1.RegistryService";
const servers: Maxine[] = [];
const closers: Array<() => void> = [];

afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(env: Record<string, string> = {}): Promise<Maxine & { url: string }> {
  const m = await startInProcess(env);
  servers.push(m);
  return m;
}

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
}

/** h1 sends one HTTP/1.1 request with exactly the headers given (Host included). */
function h1(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, headers, agent: false }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** h2 sends one request on a new HTTP/2 cleartext session, :authority and other headers as given. */
function h2(port: number, headers: http2.OutgoingHttpHeaders, body?: Buffer | string): Promise<Answer & { trailers: http2.IncomingHttpHeaders }> {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  closers.push(() => s.destroy());
  return new Promise((resolve, reject) => {
    const req = s.request(headers);
    let status = 0;
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    let text = "";
    req.on("response", (h) => {
      status = Number(h[":status"]);
      head = h;
    });
    req.on("trailers", (t) => (trailers = t));
    req.on("data", (d: Buffer) => (text += d.toString("latin1")));
    req.on("end", () => {
      s.close();
      resolve({ status, headers: head as http.IncomingHttpHeaders, text, trailers });
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("refusing to serve the network in cleartext without authentication", () => {
  it("lets loopback hosts start with nothing configured, and refuses any other host without TLS, authentication or MAXINE_INSECURE", () => {
    for (const host of ["127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]"]) {
      expect(isLoopbackHost(host), host).toBe(true);
      expect(() => checkExposure({ host, tlsCert: "", insecure: false }, false)).not.toThrow();
    }
    for (const host of ["0.0.0.0", "::", "10.1.2.3", "maxine.internal", "::ffff:10.0.0.1"]) {
      expect(isLoopbackHost(host), host).toBe(false);
      expect(() => checkExposure({ host, tlsCert: "", insecure: false }, false)).toThrow(ConfigError);
      expect(() => checkExposure({ host, tlsCert: "/etc/maxine/tls.pem", insecure: false }, false)).not.toThrow();
      expect(() => checkExposure({ host, tlsCert: "", insecure: false }, true)).not.toThrow();
      expect(() => checkExposure({ host, tlsCert: "", insecure: true }, false)).not.toThrow();
    }
    expect(() => checkExposure({ host: "0.0.0.0", tlsCert: "", insecure: false }, false)).toThrow(
      /MAXINE_HOST: "0.0.0.0" is not a loopback address, and neither TLS \(MAXINE_TLS_CERT, MAXINE_TLS_KEY\) nor authentication is configured.*set MAXINE_INSECURE=on/,
    );
  });

  it("startMaxine refuses 0.0.0.0 before binding anything", async () => {
    await expect(startInProcess({ MAXINE_HOST: "0.0.0.0" })).rejects.toThrow(/is not a loopback address/);
  });

  it("the server process exits with status 2 and says why and how", async () => {
    const env = { ...process.env };
    delete env.MAXINE_INSECURE;
    const child = spawn(process.execPath, [MAIN, "--host", "0.0.0.0", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"], env });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const [code] = await once(child, "exit");
    expect(code).toBe(2);
    expect(stderr).toContain('maxine: MAXINE_HOST: "0.0.0.0" is not a loopback address');
    expect(stderr).toContain("MAXINE_INSECURE=on");
  });

  it.each([
    [{ MAXINE_TLS_CERT: "/c.pem" }, "MAXINE_TLS_KEY: must be set together with MAXINE_TLS_CERT"],
    [{ MAXINE_TLS_KEY: "/k.pem" }, "MAXINE_TLS_CERT: must be set together with MAXINE_TLS_KEY"],
    [{ MAXINE_TLS_CERT: "/c.pem", MAXINE_TLS_KEY: "/k.pem", MAXINE_TLS_CLIENT_AUTH: "require" }, "MAXINE_TLS_CA: must name the CA file"],
    [{ MAXINE_TLS_CERT: "/c.pem", MAXINE_TLS_KEY: "/k.pem", MAXINE_TLS_CA: "/ca.pem" }, "MAXINE_TLS_CA: only verifies client certificates"],
    [{ MAXINE_TLS_CA: "/ca.pem", MAXINE_TLS_CLIENT_AUTH: "request" }, "MAXINE_TLS_CLIENT_AUTH: needs TLS"],
    [{ MAXINE_TLS_CLIENT_AUTH: "maybe" }, "MAXINE_TLS_CLIENT_AUTH: must be one of none, request, require"],
    [{ MAXINE_INSECURE: "true" }, "MAXINE_INSECURE: must be on or off"],
    [{ MAXINE_CORS_ORIGINS: "https://app.example.com/path" }, "MAXINE_CORS_ORIGINS: must be * or a comma-separated list of origins"],
  ])("rejects the TLS and CORS settings %j that do not go together", (env, message) => {
    expect(() => loadConfig([], env)).toThrow(message);
  });
});

describe("DNS rebinding: a loopback server without authentication answers loopback Host values only", () => {
  it("recognises loopback authorities with any port", () => {
    for (const a of ["localhost", "LOCALHOST:7400", "localhost.", "127.0.0.1", "127.0.0.1:7400", "127.1.2.3:1", "[::1]", "[::1]:7400", "[0:0:0:0:0:0:0:1]:80"]) {
      expect(isLoopbackAuthority(a), a).toBe(true);
    }
    for (const a of ["evil.example.com", "evil.example.com:7400", "localhost.evil.com", "127.0.0.1.evil.com", "10.0.0.1:7400", "[::2]", "[::1]x", "localhost:abc", "0.0.0.0"]) {
      expect(isLoopbackAuthority(a), a).toBe(false);
    }
  });

  it("refuses a foreign Host on Connect (HTTP/1.1 and HTTP/2), gRPC, gRPC-Web, connect-es's GET path and /healthz", async () => {
    const m = await start();
    const evil = "rebind.evil.example:7400";
    const connect = await h1(m.port, "POST", `/${SERVICE}/ListServices`, { host: evil, "content-type": "application/json" }, "{}");
    expect(connect.status).toBe(403);
    expect(JSON.parse(connect.text)).toMatchObject({ code: "permission_denied", message: expect.stringContaining("is not a loopback name") });

    const connectH2 = await h2(m.port, { ":method": "POST", ":path": `/${SERVICE}/ListServices`, ":authority": evil, "content-type": "application/json" }, "{}");
    expect(connectH2.status).toBe(403);
    expect(JSON.parse(connectH2.text).code).toBe("permission_denied");

    const web = await h2(m.port, { ":method": "POST", ":path": `/${SERVICE}/ListServices`, ":authority": evil, "content-type": "application/grpc-web+proto" }, Buffer.alloc(5));
    // gRPC-Web's trailers-only answer: the status in the headers
    expect(web.headers["grpc-status"]).toBe("7");
    expect(decodeURIComponent(String(web.headers["grpc-message"]))).toContain("is not a loopback name");

    const client = grpcClient(m.port, grpc.credentials.createInsecure(), { "grpc.default_authority": evil });
    closers.push(() => client.close());
    await expect(unary(client, "listServices", {})).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringContaining("DNS rebinding") });

    const health = await h1(m.port, "GET", "/healthz", { host: evil });
    expect(health.status).toBe(403);
    expect(health.text).not.toContain("revision");
    const metrics = await h2(m.port, { ":method": "GET", ":path": "/metrics", ":authority": evil });
    expect(metrics.status).toBe(403);
    // MAXINE_FAST_PATH=off: every call is framed by connect-es, and refused before it too
    const reference = await start({ MAXINE_FAST_PATH: "off" });
    const viaConnectEs = await h1(reference.port, "POST", `/${SERVICE}/ListServices`, { host: evil, "content-type": "application/json" }, "{}");
    expect(viaConnectEs.status).toBe(403);
    expect(JSON.parse(viaConnectEs.text).code).toBe("permission_denied");
    expect((await h1(reference.port, "POST", `/${SERVICE}/ListServices`, { host: "localhost", "content-type": "application/json" }, "{}")).status).toBe(200);

    // the same requests with loopback names are served
    for (const host of ["localhost:7400", "127.0.0.1", "[::1]:1"]) {
      expect((await h1(m.port, "POST", `/${SERVICE}/ListServices`, { host, "content-type": "application/json" }, "{}")).status, host).toBe(200);
    }
    expect((await h2(m.port, { ":method": "GET", ":path": "/healthz", ":authority": "localhost" })).status).toBe(200);
    const ok = grpcClient(m.port);
    closers.push(() => ok.close());
    await expect(unary(ok, "listServices", {})).resolves.toBeDefined();
  });
});

describe("with authentication on", () => {
  it("answers any Host (callers prove who they are instead), and still refuses foreign origins", async () => {
    const dir = await mkdtemp(join(tmpdir(), "maxine-auth-"));
    try {
      const token = "host-test-token";
      await writeFile(join(dir, "tokens"), `ops sha256:${createHash("sha256").update(token).digest("hex")} admin\n`);
      const m = await start({ MAXINE_AUTH_TOKENS_FILE: join(dir, "tokens") });
      const headers = { host: "rebind.evil.example", "content-type": "application/json", authorization: `Bearer ${token}` };
      expect((await h1(m.port, "POST", `/${SERVICE}/ListServices`, headers, "{}")).status).toBe(200);
      expect((await h1(m.port, "POST", `/${SERVICE}/ListServices`, { ...headers, authorization: "Bearer wrong" }, "{}")).status).toBe(401);
      expect((await h1(m.port, "POST", `/${SERVICE}/ListServices`, { ...headers, origin: "https://evil.example.com" }, "{}")).status).toBe(403);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("CORS", () => {
  const origin = "https://app.example.com";

  it("is off by default: a browser request (with Origin) is refused, preflight or not", async () => {
    const m = await start();
    const pre = await h1(m.port, "OPTIONS", `/${SERVICE}/ListServices`, { host: "127.0.0.1", origin, "access-control-request-method": "POST" });
    expect(pre.status).toBe(403);
    expect(pre.headers["access-control-allow-origin"]).toBeUndefined();
    const call = await h1(m.port, "POST", `/${SERVICE}/ListServices`, { host: "127.0.0.1", origin, "content-type": "application/json" }, "{}");
    expect(call.status).toBe(403);
    expect(JSON.parse(call.text).message).toContain("MAXINE_CORS_ORIGINS");
  });

  it("answers preflights for allowed origins with Connect's and gRPC-Web's headers, and marks their answers on every path", async () => {
    const m = await start({ MAXINE_CORS_ORIGINS: `${origin},http://localhost:3000` });
    const pre = await h1(m.port, "OPTIONS", `/${SERVICE}/ListServices`, {
      host: "127.0.0.1",
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,connect-protocol-version,authorization",
    });
    expect(pre.status).toBe(204);
    expect(pre.headers["access-control-allow-origin"]).toBe(origin);
    expect(pre.headers["access-control-allow-methods"]).toBe("POST, GET");
    const allowed = String(pre.headers["access-control-allow-headers"]).toLowerCase();
    for (const h of ["content-type", "connect-protocol-version", "connect-timeout-ms", "x-grpc-web", "grpc-timeout", "x-user-agent", "authorization"]) {
      expect(allowed).toContain(h);
    }
    expect(pre.headers["access-control-max-age"]).toBe("7200");

    // Connect over HTTP/1.1 (fast path)
    const call = await h1(m.port, "POST", `/${SERVICE}/ListServices`, { host: "127.0.0.1", origin, "content-type": "application/json" }, "{}");
    expect(call.status).toBe(200);
    expect(call.headers["access-control-allow-origin"]).toBe(origin);
    expect(call.headers["access-control-expose-headers"]).toContain("Grpc-Status");
    expect(call.headers.vary).toContain("Origin");
    // gRPC-Web over HTTP/2 (fast path, served on the stream)
    const web = await h2(m.port, { ":method": "POST", ":path": `/${SERVICE}/ListServices`, origin: "http://localhost:3000", "content-type": "application/grpc-web+proto" }, Buffer.alloc(5));
    expect(web.status).toBe(200);
    expect(web.headers["access-control-allow-origin"]).toBe("http://localhost:3000");
    expect(web.text).toContain("grpc-status: 0");
    // connect-es's framing (MAXINE_FAST_PATH=off), over HTTP/1.1 and HTTP/2, and a preflight over HTTP/2
    const reference = await start({ MAXINE_FAST_PATH: "off", MAXINE_CORS_ORIGINS: origin });
    const viaConnectEs = await h1(reference.port, "POST", `/${SERVICE}/ListServices`, { host: "127.0.0.1", origin, "content-type": "application/json" }, "{}");
    expect(viaConnectEs.status).toBe(200);
    expect(viaConnectEs.headers["access-control-allow-origin"]).toBe(origin);
    const viaConnectEsH2 = await h2(reference.port, { ":method": "POST", ":path": `/${SERVICE}/ListServices`, origin, "content-type": "application/json" }, "{}");
    expect(viaConnectEsH2.status).toBe(200);
    expect(viaConnectEsH2.headers["access-control-allow-origin"]).toBe(origin);
    const pre2 = await h2(m.port, { ":method": "OPTIONS", ":path": `/${SERVICE}/ListServices`, origin, "access-control-request-method": "POST" });
    expect(pre2.status).toBe(204);
    expect(pre2.headers["access-control-allow-origin"]).toBe(origin);

    // another origin is still refused
    const other = await h1(m.port, "POST", `/${SERVICE}/ListServices`, { host: "127.0.0.1", origin: "https://evil.example.com", "content-type": "application/json" }, "{}");
    expect(other.status).toBe(403);
  });
});
