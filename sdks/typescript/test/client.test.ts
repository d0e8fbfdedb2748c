import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { createMaxineClient, type Protocol } from "../src/client.js";
import { Session } from "../src/session.js";
import { Watcher } from "../src/watcher.js";
import type { ServerProcess } from "../../../server/test/support/server-process.js";
import { Scope } from "./support/scope.js";
import { startTestServer } from "./support/sdk-server.js";

let server: ServerProcess;
const scope = new Scope();

beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await scope.close();
  await server?.stop();
});

const cases: Array<{ protocol: Protocol; httpVersion: "1.1" | "2" }> = [
  { protocol: "grpc", httpVersion: "2" },
  { protocol: "connect", httpVersion: "2" },
  { protocol: "grpc-web", httpVersion: "2" },
  { protocol: "connect", httpVersion: "1.1" },
  { protocol: "grpc-web", httpVersion: "1.1" },
];

describe("createMaxineClient", () => {
  for (const { protocol, httpVersion } of cases) {
    it(`speaks ${protocol} over HTTP/${httpVersion}: unary calls and a watch`, async () => {
      const service = `proto-${protocol}-${httpVersion.replace(".", "")}`;
      const sessionManager = httpVersion === "2" ? scope.defer(new Http2SessionManager(server.url), (m) => m.abort()) : undefined;
      const client = createMaxineClient({ baseUrl: server.url, protocol, httpVersion, sessionManager });
      const r = await client.register({ instance: { service, instanceId: "i1", host: "127.0.0.1", port: 1 } });
      expect(r.instance!.namespace).toBe("default");
      const watcher = scope.defer(new Watcher(client, { services: service }), (w) => w.close());
      await watcher.ready();
      expect(watcher.instances().map((i) => i.instanceId)).toEqual(["i1"]);
      const list = await client.listServices({});
      expect(list.services.find((s) => s.service === service)?.instanceCount).toBe(1);
    });
  }

  it("runs a Session's bidi heartbeat stream over the Connect protocol on HTTP/2", async () => {
    const sessionManager = scope.defer(new Http2SessionManager(server.url), (m) => m.abort());
    const client = createMaxineClient({ baseUrl: server.url, protocol: "connect", sessionManager });
    const session = scope.defer(new Session(client), (s) => s.close());
    const h = await session.register({ service: "connect-bidi", host: "127.0.0.1", port: 1 }, { ttlMs: 1000 });
    expect(h.key.instanceId).not.toBe(""); // assigned by the server
    expect(h.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now());
  });

  it("rejects gRPC over HTTP/1.1 and unknown protocols", () => {
    expect(() => createMaxineClient({ baseUrl: server.url, protocol: "grpc", httpVersion: "1.1" })).toThrow(/HTTP|httpVersion/);
    expect(() => createMaxineClient({ baseUrl: server.url, protocol: "soap" as Protocol })).toThrow(/protocol/);
  });
});
