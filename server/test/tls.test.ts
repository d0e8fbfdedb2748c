import * as grpc from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { copyFile, rename, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import type { Logger } from "../src/domain/logger.js";
import type { Interceptor } from "../src/rpc/context.js";
import { identityOfCertificate, parseSubjectAltName } from "../src/transport/peer-identity.js";
import { grpcClient, unary } from "./support/grpc-client.js";
import { startInProcess } from "./support/in-process.js";
import { makeTestCerts, type TestCerts } from "./support/tls-certs.js";

// TLS and mTLS on the one port (transport/listener.ts, tls-certificates.ts,
// peer-identity.ts), through real sockets on loopback with certificates
// that scripts/make-test-certs.sh makes with openssl for this file.

const SERVICE = "maxine.registry.v1.RegistryService";
const SPIFFE = "spiffe://maxine.test/ns/prod/sa/payments";

interface LogLine {
  readonly level: string;
  readonly obj: Record<string, unknown>;
  readonly msg: string | undefined;
}

function capturing(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

let certs: TestCerts;
const servers: Maxine[] = [];
const closers: Array<() => void> = [];

beforeAll(async () => {
  certs = await makeTestCerts();
});
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await certs.remove();
});

type Seen = { protocol: string; identity: string | undefined };

/** start runs a TLS server with the test certificates (env overrides), recording each call's protocol and peer identity. */
async function start(env: Record<string, string> = {}): Promise<Maxine & { seen: Seen[]; log: ReturnType<typeof capturing> }> {
  const seen: Seen[] = [];
  const record: Interceptor = {
    onStart(ctx) {
      seen.push({ protocol: ctx.protocol, identity: ctx.connection.peerIdentity });
    },
  };
  const log = capturing();
  const m = await startInProcess(
    { MAXINE_TLS_CERT: certs.path("server.pem"), MAXINE_TLS_KEY: certs.path("server-key.pem"), ...env },
    { interceptors: [record], logger: log },
  );
  servers.push(m);
  return Object.assign(m, { seen, log });
}

/** connectH2 opens an HTTP/2 session over TLS, trusting the test CA (client certificate files optional). */
async function connectH2(port: number, client?: string, host = "127.0.0.1"): Promise<http2.ClientHttp2Session> {
  const opts: http2.SecureClientSessionOptions = { ca: await certs.pem("ca.pem") };
  if (client !== undefined) Object.assign(opts, { cert: await certs.pem(`${client}.pem`), key: await certs.pem(`${client}-key.pem`) });
  const s = http2.connect(`https://${host}:${port}`, opts);
  closers.push(() => s.destroy());
  await new Promise<void>((resolve, reject) => {
    s.once("connect", () => resolve());
    s.once("error", reject);
  });
  return s;
}

/** h2Json calls a unary method with Connect JSON on an HTTP/2 session. */
function h2Json(s: http2.ClientHttp2Session, method: string, body: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = s.request({ ":method": "POST", ":path": `/${SERVICE}/${method}`, "content-type": "application/json" });
    let status = 0;
    let text = "";
    req.on("response", (h) => (status = Number(h[":status"])));
    req.on("data", (d: Buffer) => (text += d.toString()));
    req.on("end", () => resolve({ status, json: JSON.parse(text) }));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** h1Json calls a unary method with Connect JSON over HTTP/1.1 and TLS (https.request; ALPN offers http/1.1 only). */
async function h1Json(port: number, method: string, body: unknown, client?: string): Promise<{ status: number; json: any; alpn: string | false | null }> {
  const opts: https.RequestOptions & tls.ConnectionOptions = { ca: await certs.pem("ca.pem"), agent: false, ALPNProtocols: ["http/1.1"] };
  if (client !== undefined) Object.assign(opts, { cert: await certs.pem(`${client}.pem`), key: await certs.pem(`${client}-key.pem`) });
  return new Promise((resolve, reject) => {
    const req = https.request(
      { ...opts, host: "127.0.0.1", port, method: "POST", path: `/${SERVICE}/${method}`, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, json: JSON.parse(text), alpn: (res.socket as tls.TLSSocket).alpnProtocol }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

function peerCN(s: http2.ClientHttp2Session): string {
  return (s.socket as tls.TLSSocket).getPeerCertificate().subject.CN as string;
}

describe("TLS on the one port", () => {
  it("serves gRPC (grpc-js), Connect over HTTP/2 and HTTP/1.1, gRPC-Web and curl --cacert, picking the protocol by ALPN", async () => {
    const m = await start();
    expect(m.tls).toBe(true);
    const ca = await certs.pem("ca.pem");

    const client = grpcClient(m.port, grpc.credentials.createSsl(ca));
    closers.push(() => client.close());
    const reg = await unary<any>(client, "register", { instance: { service: "payments", instanceId: "p-1", host: "10.0.0.1", port: 8080 } });
    expect(reg.instance.instanceId).toBe("p-1");

    const s = await connectH2(m.port);
    expect((s.socket as tls.TLSSocket).alpnProtocol).toBe("h2");
    const listed = await h2Json(s, "ListServices", {});
    expect(listed.json.services).toEqual([{ service: "payments", instanceCount: 1, servingCount: 1 }]);

    const h1 = await h1Json(m.port, "Discover", { service: "payments" });
    expect(h1.alpn).toBe("http/1.1");
    expect(h1.json.instance.instanceId).toBe("p-1");

    // gRPC-Web (binary) over HTTP/2 and TLS: an empty ListServicesRequest, then the trailer frame
    const web = await new Promise<Buffer>((resolve, reject) => {
      const req = s.request({ ":method": "POST", ":path": `/${SERVICE}/ListServices`, "content-type": "application/grpc-web+proto" });
      const parts: Buffer[] = [];
      req.on("data", (d: Buffer) => parts.push(d));
      req.on("end", () => resolve(Buffer.concat(parts)));
      req.on("error", reject);
      req.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    expect(web.toString("latin1")).toContain("grpc-status: 0");

    const { stdout } = await promisify(execFile)(
      "curl",
      ["-s", "--cacert", certs.path("ca.pem"), `https://localhost:${m.port}/${SERVICE}/ListServices`, "-H", "Content-Type: application/json", "-d", "{}", "-w", " %{http_version}"],
      { timeout: 10_000 },
    );
    expect(stdout).toMatch(/"service":"payments".* 2$/);
    expect(m.seen.map((c) => c.protocol)).toEqual(["grpc", "connect", "connect", "grpc-web", "connect"]);
  });

  it("answers cleartext on the TLS port with a 400 that says to use TLS", async () => {
    const m = await start();
    const res = await fetch(`http://127.0.0.1:${m.port}/healthz`);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("this port speaks TLS only");
  });

  it("refuses to start on TLS files that do not load, naming the setting and the file", async () => {
    await expect(startInProcess({ MAXINE_TLS_CERT: certs.path("server.pem"), MAXINE_TLS_KEY: certs.path("client-key.pem") })).rejects.toThrow(
      /MAXINE_TLS_KEY: the key in .*client-key\.pem does not match the certificate/,
    );
    await expect(startInProcess({ MAXINE_TLS_CERT: certs.path("missing.pem"), MAXINE_TLS_KEY: certs.path("server-key.pem") })).rejects.toThrow(
      /MAXINE_TLS_CERT: cannot read .*missing\.pem: ENOENT/,
    );
    await expect(startInProcess({ MAXINE_TLS_CERT: certs.path("server-key.pem"), MAXINE_TLS_KEY: certs.path("server-key.pem") })).rejects.toThrow(
      /MAXINE_TLS_CERT: .* is not a PEM certificate/,
    );
  });
});

describe("certificate reload", () => {
  it("keeps open connections and their streams on the old certificate while new connections get the new one; a bad file keeps the last good one", async () => {
    // the server reads a copy that the test replaces, as an operator (or cert-manager) would
    const cert = certs.path("live.pem");
    const key = certs.path("live-key.pem");
    await copyFile(certs.path("server.pem"), cert);
    await copyFile(certs.path("server-key.pem"), key);
    const m = await start({ MAXINE_TLS_CERT: cert, MAXINE_TLS_KEY: key, MAXINE_TLS_RELOAD_INTERVAL: "50ms" });

    const old = await connectH2(m.port);
    expect(peerCN(old)).toBe("maxine");
    // a watch stream open on the old connection across the reload
    const watch = old.request({ ":method": "POST", ":path": `/${SERVICE}/WatchServices`, "content-type": "application/connect+json" });
    let watched = "";
    watch.on("data", (d: Buffer) => (watched += d.toString("latin1")));
    const body = Buffer.from(JSON.stringify({ services: ["rotated"] }));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length, 1);
    watch.end(Buffer.concat([head, body]));
    await expect.poll(() => watched, { timeout: 5_000 }).toContain("snapshotEnd");

    // rotate: the new key and certificate replace the files (renamed into place, key first)
    await copyFile(certs.path("server-2-key.pem"), `${key}.new`);
    await copyFile(certs.path("server-2.pem"), `${cert}.new`);
    await rename(`${key}.new`, key);
    await rename(`${cert}.new`, cert);
    await expect.poll(() => m.log.lines.filter((l) => l.msg === "TLS certificate reloaded").length, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(m.log.lines.find((l) => l.msg === "TLS certificate reloaded")!.obj).toMatchObject({ trigger: "file changed", subject: "CN=maxine-2" });

    const fresh = await connectH2(m.port);
    expect(peerCN(fresh)).toBe("maxine-2");
    expect((await h2Json(fresh, "Register", { instance: { service: "rotated", instanceId: "r-1", host: "10.0.0.2", port: 80 } })).status).toBe(200);
    // the old connection still serves, on its old certificate, and its watch saw the change
    await expect.poll(() => watched, { timeout: 5_000 }).toContain('"instanceId":"r-1"');
    expect((await h2Json(old, "ListServices", {})).status).toBe(200);
    expect(peerCN(old)).toBe("maxine");
    watch.close();

    // a bad file: the reload is refused, logged with the reason, and new connections keep maxine-2
    await writeFile(cert, "not a certificate\n");
    await expect
      .poll(() => m.log.lines.filter((l) => l.msg === "TLS certificate not reloaded: keeping the previous one").length, { timeout: 10_000 })
      .toBeGreaterThan(0);
    const refused = m.log.lines.find((l) => l.msg === "TLS certificate not reloaded: keeping the previous one")!;
    expect(refused.level).toBe("warn");
    expect(String(refused.obj.err)).toMatch(/MAXINE_TLS_CERT: .*live\.pem is not a PEM certificate/);
    expect(m.reloadCertificates()).toBe(false); // what SIGHUP does
    const after = await connectH2(m.port);
    expect(peerCN(after)).toBe("maxine-2");
    expect((await h2Json(after, "ListServices", {})).status).toBe(200);

    // SIGHUP's path loads a good file again at once
    await copyFile(certs.path("server.pem"), cert);
    await copyFile(certs.path("server-key.pem"), key);
    expect(m.reloadCertificates()).toBe(true);
    expect(peerCN(await connectH2(m.port))).toBe("maxine");
  });

  it("reloads on SIGHUP in the real process", async () => {
    const { startServerProcess } = await import("./support/server-process.js");
    const cert = certs.path("hup.pem");
    const key = certs.path("hup-key.pem");
    await copyFile(certs.path("server.pem"), cert);
    await copyFile(certs.path("server-key.pem"), key);
    const p = await startServerProcess({ MAXINE_TLS_CERT: cert, MAXINE_TLS_KEY: key, MAXINE_TLS_RELOAD_INTERVAL: "0ms" });
    try {
      expect(peerCN(await connectH2(p.port))).toBe("maxine");
      await copyFile(certs.path("server-2.pem"), cert);
      await copyFile(certs.path("server-2-key.pem"), key);
      // no file watching (0ms): only the signal reloads
      expect(peerCN(await connectH2(p.port))).toBe("maxine");
      p.child.kill("SIGHUP");
      await expect.poll(() => p.logs.some((l) => l.includes('"trigger":"SIGHUP"')), { timeout: 5_000 }).toBe(true);
      expect(peerCN(await connectH2(p.port))).toBe("maxine-2");
    } finally {
      for (const c of closers.splice(0)) c();
      expect(await p.stop()).toBe(0);
    }
  });
});

describe("mTLS: the client certificate's identity reaches every call", () => {
  it("require: a verified certificate's URI SAN (or CN) is the connection's peerIdentity, on Maxine's framing and connect-es's", async () => {
    const env = { MAXINE_TLS_CA: certs.path("ca.pem"), MAXINE_TLS_CLIENT_AUTH: "require" };
    const fast = await start(env);
    const ca = await certs.pem("ca.pem");
    const client = grpcClient(fast.port, grpc.credentials.createSsl(ca, await certs.pem("client-key.pem"), await certs.pem("client.pem")));
    closers.push(() => client.close());
    await unary(client, "listServices", {});
    expect((await h1Json(fast.port, "ListServices", {}, "client-cn")).status).toBe(200);
    expect(fast.seen).toEqual([
      { protocol: "grpc", identity: "spiffe://maxine.test/ns/prod/sa/payments" },
      { protocol: "connect", identity: "inventory" },
    ]);

    // MAXINE_FAST_PATH=off: every call is framed by connect-es (connect-routes.ts)
    const reference = await start({ ...env, MAXINE_FAST_PATH: "off" });
    const s = await connectH2(reference.port, "client");
    expect((await h2Json(s, "ListServices", {})).status).toBe(200);
    expect((await h1Json(reference.port, "ListServices", {}, "client-cn")).status).toBe(200);
    expect(reference.seen).toEqual([
      { protocol: "connect", identity: "spiffe://maxine.test/ns/prod/sa/payments" },
      { protocol: "connect", identity: "inventory" },
    ]);

    // no certificate, or one from a CA the server does not trust: the handshake fails, no call runs
    await expect(h1Json(fast.port, "ListServices", {})).rejects.toThrow();
    await expect(h1Json(fast.port, "ListServices", {}, "rogue-client")).rejects.toThrow();
    expect(fast.seen).toHaveLength(2);
  });

  it("request: clients without a verified certificate are served with no identity", async () => {
    const m = await start({ MAXINE_TLS_CA: certs.path("ca.pem"), MAXINE_TLS_CLIENT_AUTH: "request" });
    expect((await h1Json(m.port, "ListServices", {})).status).toBe(200);
    expect((await h1Json(m.port, "ListServices", {}, "rogue-client")).status).toBe(200);
    expect((await h1Json(m.port, "ListServices", {}, "client")).status).toBe(200);
    expect(m.seen.map((c) => c.identity)).toEqual([undefined, undefined, "spiffe://maxine.test/ns/prod/sa/payments"]);
  });

  it("picks URI SAN, else DNS SAN, else CN, and reads quoted SAN values", () => {
    expect(identityOfCertificate({ subject: { CN: "cn" } as never, subjectaltname: "DNS:a.example, URI:spiffe://td/x" })).toBe("spiffe://td/x");
    expect(identityOfCertificate({ subject: { CN: "cn" } as never, subjectaltname: "IP Address:127.0.0.1, DNS:a.example" })).toBe("a.example");
    expect(identityOfCertificate({ subject: { CN: "cn" } as never, subjectaltname: "" })).toBe("cn");
    expect(identityOfCertificate({ subject: {} as never, subjectaltname: "" })).toBeUndefined();
    expect(parseSubjectAltName('URI:"spiffe://td/a,b", DNS:x')).toEqual([
      { type: "URI", value: "spiffe://td/a,b" },
      { type: "DNS", value: "x" },
    ]);
  });
});

describe("the listener's limits apply to TLS connections", () => {
  it("closes a connection whose TLS handshake trickles past MAXINE_HANDSHAKE_TIMEOUT", async () => {
    const m = await start({ MAXINE_HANDSHAKE_TIMEOUT: "500ms" });
    const sock = net.connect(m.port, "127.0.0.1");
    closers.push(() => sock.destroy());
    await once(sock, "connect");
    // a TLS record header announcing a ClientHello, then one byte every 100 ms: never idle, never done
    sock.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]));
    const drip = setInterval(() => sock.writable && sock.write(Buffer.from([0x01])), 100);
    closers.push(() => clearInterval(drip));
    const t0 = performance.now();
    await once(sock, "close");
    clearInterval(drip);
    const ms = performance.now() - t0;
    expect(ms).toBeGreaterThan(400);
    expect(ms).toBeLessThan(3_000);
    expect(m.log.lines.some((l) => l.obj.limit === "MAXINE_HANDSHAKE_TIMEOUT")).toBe(true);
  });

  it("counts TLS connections against MAXINE_MAX_CONNECTIONS_PER_ADDRESS and sends GOAWAY after MAXINE_IDLE_TIMEOUT", async () => {
    const m = await start({ MAXINE_MAX_CONNECTIONS_PER_ADDRESS: "1", MAXINE_IDLE_TIMEOUT: "300ms" });
    const first = await connectH2(m.port);
    await expect(connectH2(m.port)).rejects.toThrow();
    const goaway = once(first, "goaway");
    await goaway;
    await once(first, "close");
    // the slot is free again once the idle connection closed
    await expect.poll(async () => (await connectH2(m.port).then(() => true, () => false)), { timeout: 5_000 }).toBe(true);
  });

  it("drains TLS connections on close: an open watch ends with UNAVAILABLE and the server closes within the grace", async () => {
    const m = await start({ MAXINE_SHUTDOWN_GRACE: "3s" });
    const s = await connectH2(m.port);
    const watch = s.request({ ":method": "POST", ":path": `/${SERVICE}/WatchServices`, "content-type": "application/connect+json" });
    let watched = "";
    watch.on("data", (d: Buffer) => (watched += d.toString("latin1")));
    const body = Buffer.from(JSON.stringify({ services: ["drain"] }));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length, 1);
    watch.end(Buffer.concat([head, body]));
    await expect.poll(() => watched, { timeout: 5_000 }).toContain("snapshotEnd");
    const t0 = performance.now();
    servers.splice(servers.indexOf(m), 1);
    await m.close();
    expect(performance.now() - t0).toBeLessThan(2_500);
    await expect.poll(() => watched, { timeout: 5_000 }).toContain('"code":"unavailable"');
  });

});

describe("mTLS with authentication on", () => {
  it("a call without a token acts as its client certificate's identity (source mtls); a token still wins", async () => {
    const token = "tls-test-token-ops";
    const tokens = certs.path("tokens.txt");
    await writeFile(tokens, `ops sha256:${createHash("sha256").update(token).digest("hex")} admin\n`);
    const principals: Array<{ name: string; source: string }> = [];
    const log = capturing();
    const m = await startInProcess(
      {
        MAXINE_TLS_CERT: certs.path("server.pem"),
        MAXINE_TLS_KEY: certs.path("server-key.pem"),
        MAXINE_TLS_CA: certs.path("ca.pem"),
        MAXINE_TLS_CLIENT_AUTH: "request",
        MAXINE_AUTH_TOKENS_FILE: tokens,
      },
      { logger: log, interceptors: [{ onStart: (ctx) => void principals.push({ name: ctx.principal.name, source: ctx.principal.source }) }] },
    );
    servers.push(m);
    const ca = await certs.pem("ca.pem");
    const withCert = grpcClient(m.port, grpc.credentials.createSsl(ca, await certs.pem("client-key.pem"), await certs.pem("client.pem")));
    closers.push(() => withCert.close());
    await unary(withCert, "listServices", {});
    const md = new grpc.Metadata();
    md.set("authorization", `Bearer ${token}`);
    await new Promise((resolve, reject) => withCert.listServices({}, md, (err: Error | null, res: unknown) => (err ? reject(err) : resolve(res))));
    expect(principals).toEqual([
      { name: SPIFFE, source: "mtls" },
      { name: "ops", source: "token" },
    ]);
    // no certificate and no token: UNAUTHENTICATED, before any handler
    const bare = grpcClient(m.port, grpc.credentials.createSsl(ca));
    closers.push(() => bare.close());
    await expect(unary(bare, "listServices", {})).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    expect(principals).toHaveLength(2);
  });
});
