import { copyFile } from "node:fs/promises";
import tls from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMaxineClient, type Protocol } from "../src/client.js";
import { Session } from "../src/session.js";
import { HEADER_ECHO, startServerProcess, type ServerProcess } from "../../../server/test/support/server-process.js";
import { makeTestCerts, type TestCerts } from "../../../server/test/support/tls-certs.js";
import { Scope } from "./support/scope.js";
import { requireBuilt, TEST_SERVER_ENV } from "./support/sdk-server.js";
import { delay, waitFor } from "./support/wait.js";

// The SDK's token and TLS options against a real TLS server (certificates
// from scripts/make-test-certs.sh, made for this file). The server is the
// header-echo fixture: the built server plus an interceptor that prints
// each call's authorization header and mTLS identity, so these tests check
// what the client sends; the server's authentication (accepting or
// refusing tokens) is tested on the server side.

let certs: TestCerts;
let server: ServerProcess;
let url: string;
const scope = new Scope();
const SPIFFE = "spiffe://maxine.test/ns/prod/sa/payments";

interface EchoedCall {
  readonly method: string;
  readonly protocol: string;
  readonly authorization: string | null;
  readonly peerIdentity: string | null;
}

/** echoed lists the calls the server printed, oldest first. */
function echoed(): EchoedCall[] {
  return server.logs.flatMap((l) => {
    try {
      const rec = JSON.parse(l) as EchoedCall & { msg?: string };
      return rec.msg === "test: call" ? [{ method: rec.method, protocol: rec.protocol, authorization: rec.authorization, peerIdentity: rec.peerIdentity }] : [];
    } catch {
      return [];
    }
  });
}

beforeAll(async () => {
  requireBuilt();
  certs = await makeTestCerts();
  await copyFile(certs.path("server.pem"), certs.path("live.pem"));
  await copyFile(certs.path("server-key.pem"), certs.path("live-key.pem"));
  server = await startServerProcess(
    {
      ...TEST_SERVER_ENV,
      MAXINE_TLS_CERT: certs.path("live.pem"),
      MAXINE_TLS_KEY: certs.path("live-key.pem"),
      MAXINE_TLS_CA: certs.path("ca.pem"),
      MAXINE_TLS_CLIENT_AUTH: "request",
      MAXINE_TLS_RELOAD_INTERVAL: "0ms",
    },
    HEADER_ECHO,
  );
  url = `https://127.0.0.1:${server.port}`;
});
afterEach(() => scope.close());
afterAll(async () => {
  await server?.stop();
  await certs?.remove();
});

const cases: Array<{ protocol: Protocol; httpVersion: "1.1" | "2" }> = [
  { protocol: "grpc", httpVersion: "2" },
  { protocol: "connect", httpVersion: "2" },
  { protocol: "grpc-web", httpVersion: "2" },
  { protocol: "connect", httpVersion: "1.1" },
];

describe("TLS and bearer tokens", () => {
  for (const { protocol, httpVersion } of cases) {
    it(`sends the token and the client certificate over TLS: ${protocol}, HTTP/${httpVersion}`, async () => {
      const token = `static-${protocol}-${httpVersion}`;
      const client = createMaxineClient({
        baseUrl: url,
        protocol,
        httpVersion,
        token,
        tls: { ca: await certs.pem("ca.pem"), cert: await certs.pem("client.pem"), key: await certs.pem("client-key.pem") },
      });
      await client.listServices({});
      // the fixture prints the call before serving it; its stdout is read asynchronously here
      await waitFor(() => echoed().some((c) => c.authorization === `Bearer ${token}`), "the server's line for the call");
      const mine = echoed().filter((c) => c.authorization === `Bearer ${token}`);
      expect(mine).toEqual([{ method: "ListServices", protocol, authorization: `Bearer ${token}`, peerIdentity: SPIFFE }]);
    });
  }

  it("calls a token function before every call and every stream it opens (refresh)", async () => {
    let n = 0;
    const client = createMaxineClient({ baseUrl: url, token: async () => `refreshed-${++n}`, tls: { ca: await certs.pem("ca.pem") } });
    await client.listServices({});
    await client.listServices({});
    const session = scope.defer(new Session(client), (s) => s.close());
    await session.register({ service: "tokens", instanceId: "t-1", host: "127.0.0.1", port: 1 }, { ttlMs: 5_000 });
    await waitFor(() => echoed().some((c) => c.method === "Heartbeat" && c.authorization?.startsWith("Bearer refreshed-") === true), "the heartbeat stream's token");
    await waitFor(() => echoed().filter((c) => c.authorization?.startsWith("Bearer refreshed-") === true).length >= n, "a line per token");
    const mine = echoed().filter((c) => c.authorization?.startsWith("Bearer refreshed-"));
    expect(mine.slice(0, 2).map((c) => c.authorization)).toEqual(["Bearer refreshed-1", "Bearer refreshed-2"]);
    // one token per call, each fresh: as many distinct tokens as calls, and as many calls as the function was asked
    expect(new Set(mine.map((c) => c.authorization)).size).toBe(mine.length);
    expect(mine.length).toBe(n);
    // no client certificate: the server (MAXINE_TLS_CLIENT_AUTH=request) serves it with no identity
    expect(mine.every((c) => c.peerIdentity === null)).toBe(true);
  });

  it("refuses tokens that cannot be sent and TLS options on http://, without showing the token", async () => {
    expect(() => createMaxineClient({ baseUrl: url, token: "" })).toThrow(/token: must be a non-empty string/);
    expect(() => createMaxineClient({ baseUrl: "http://127.0.0.1:1", tls: {} })).toThrow(/tls needs an https:\/\/ baseUrl/);
    expect(() => createMaxineClient({ baseUrl: url, tls: { cert: "x" } })).toThrow(/cert and key go together/);
    const client = createMaxineClient({ baseUrl: url, token: () => "secret-value\r\nx-injected: 1", tls: { ca: await certs.pem("ca.pem") } });
    const err = await client.listServices({}).catch((e: unknown) => e as Error);
    expect(String(err)).toContain("token(): must be a non-empty string without control characters");
    expect(String(err)).not.toContain("secret-value");
  });

  it("keeps an open session across a certificate reload (SIGHUP), and new connections get the new certificate", async () => {
    const ca = await certs.pem("ca.pem");
    const client = createMaxineClient({ baseUrl: url, tls: { ca } });
    const session = scope.defer(new Session(client), (s) => s.close());
    let reconnects = 0;
    session.on("reconnect", () => reconnects++);
    await session.register({ service: "reload", instanceId: "r-1", host: "127.0.0.1", port: 1 }, { ttlMs: 300 });

    await copyFile(certs.path("server-2-key.pem"), certs.path("live-key.pem"));
    await copyFile(certs.path("server-2.pem"), certs.path("live.pem"));
    server.child.kill("SIGHUP");
    await waitFor(() => server.logs.some((l) => l.includes("TLS certificate reloaded") && l.includes("CN=maxine-2")), "the reload");

    const cn = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port: server.port, ca, ALPNProtocols: ["h2"] }, () => {
        resolve(s.getPeerCertificate().subject.CN as string);
        s.destroy();
      });
      s.on("error", reject);
    });
    expect(cn).toBe("maxine-2");

    // several TTLs later the instance is still there: the session's stream kept beating on its old connection
    await delay(1_000);
    const fresh = createMaxineClient({ baseUrl: url, protocol: "connect", httpVersion: "1.1", tls: { ca } });
    const found = await fresh.discover({ service: "reload", includeAll: true });
    expect(found.instances.map((i) => i.instanceId)).toEqual(["r-1"]);
    expect(reconnects).toBe(0);
  });
});
