import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { HeartbeatRequestSchema, RegistryService } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import type { Interceptor, Protocol } from "../src/rpc/context.js";
import { toConnectError } from "../src/rpc/errors.js";
import { grpcClient, unary } from "./support/grpc-client.js";
import { startInProcess } from "./support/in-process.js";

// One interceptor chain for every call: a test interceptor registered once
// sees every RPC on every protocol and HTTP version, with Maxine's framing
// (MAXINE_FAST_PATH=on) and with connect-es's (off), and each call's
// principal is set before it runs.

interface Seen {
  method: string;
  protocol: Protocol;
  principal: string;
  code: number;
}

function recorder(seen: Seen[]): Interceptor {
  return {
    onEnd(ctx, err) {
      seen.push({ method: ctx.method.name, protocol: ctx.protocol, principal: ctx.principal.name, code: err === undefined ? 0 : toConnectError(err).code });
      return err;
    },
  };
}

type RegistryClient = Client<typeof RegistryService>;

/** everyRpc calls each RPC once; bidi only where the transport can stream both ways (HTTP/2, not gRPC-Web). */
async function everyRpc(client: RegistryClient, tag: string, bidi: boolean): Promise<string[]> {
  const id = `i-${tag}`;
  await client.register({ instance: { service: "pipe", instanceId: id, host: "10.0.0.1", port: 80 } });
  await client.discover({ service: "pipe" });
  await client.listServices({});
  const abort = new AbortController();
  const watch = client.watchServices({ services: ["pipe"] }, { signal: abort.signal });
  for await (const m of watch) if (m.message.case === "snapshotEnd") break;
  abort.abort(); // the client cancels
  const called = ["Register", "Discover", "ListServices", "WatchServices"];
  if (bidi) {
    const requests = (async function* () {
      yield create(HeartbeatRequestSchema, { sequence: 1n, beats: [{ key: { service: "pipe", instanceId: id } }] });
    })();
    for await (const r of client.heartbeat(requests)) expect(r.sequence).toBe(1n);
    called.push("Heartbeat");
  }
  await client.deregister({ key: { service: "pipe", instanceId: id } });
  called.push("Deregister");
  await expect(client.discover({ service: "nowhere" })).rejects.toMatchObject({ code: Code.NotFound });
  return called;
}

for (const fastPath of ["on", "off"]) {
  describe(`every RPC on every protocol passes one interceptor chain (MAXINE_FAST_PATH=${fastPath})`, () => {
    const seen: Seen[] = [];
    let server: Maxine & { url: string };
    const sessions: Http2SessionManager[] = [];
    beforeAll(async () => {
      server = await startInProcess({ MAXINE_FAST_PATH: fastPath }, { interceptors: [recorder(seen)] });
    });
    afterAll(async () => {
      for (const s of sessions) s.abort();
      await server.close();
    });

    const h2 = (): Http2SessionManager => {
      const s = new Http2SessionManager(server.url);
      sessions.push(s);
      return s;
    };
    const transports: Array<[string, Protocol, () => Transport, boolean]> = [
      ["gRPC, HTTP/2", "grpc", () => createGrpcTransport({ baseUrl: server.url, sessionManager: h2() }), true],
      ["gRPC-Web, HTTP/1.1", "grpc-web", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }), false],
      ["gRPC-Web, HTTP/2", "grpc-web", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "2", sessionManager: h2() }), false],
      ["Connect JSON, HTTP/1.1", "connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }), false],
      ["Connect binary, HTTP/1.1", "connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: true }), false],
      ["Connect JSON, HTTP/2", "connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", sessionManager: h2() }), true],
      ["Connect binary, HTTP/2", "connect", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2", useBinaryFormat: true, sessionManager: h2() }), true],
    ];

    it.each(transports)("%s", async (what, protocol, transport, bidi) => {
      seen.length = 0;
      const called = await everyRpc(createClient(RegistryService, transport()), what.replace(/\W+/g, "-"), bidi);
      await expect.poll(() => seen.filter((s) => s.method === "WatchServices").length).toBe(1);
      const byMethod = new Map(seen.map((s) => [s.method, s]));
      for (const m of called) {
        expect(byMethod.get(m), m).toMatchObject({ protocol, principal: "anonymous" });
      }
      expect(seen.filter((s) => s.method === "Discover").map((s) => s.code)).toEqual([0, Code.NotFound]);
      expect(byMethod.get("WatchServices")?.code).toBe(Code.Canceled);
      expect(byMethod.get("Heartbeat")?.code ?? 0).toBe(0);
    });

    it("@grpc/grpc-js (an independent client)", async () => {
      seen.length = 0;
      const client = grpcClient(server.port);
      try {
        await unary(client, "Register", { instance: { service: "pipe", instanceId: "grpcjs", host: "10.0.0.1", port: 80 } });
        await expect(unary(client, "Discover", { service: "nowhere" })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
        expect(seen.map((s) => [s.method, s.protocol, s.code])).toEqual([
          ["Register", "grpc", 0],
          ["Discover", "grpc", Code.NotFound],
        ]);
      } finally {
        client.close();
      }
    });

    it("an interceptor's refusal reaches the client as its code, before any handler runs", async () => {
      const refused = await startInProcess(
        { MAXINE_FAST_PATH: fastPath },
        {
          interceptors: [
            {
              onStart(ctx) {
                if (ctx.method.name === "Register") throw new ConnectError("no registering here", Code.PermissionDenied);
              },
            },
          ],
        },
      );
      try {
        const client = createClient(RegistryService, createConnectTransport({ baseUrl: refused.url, httpVersion: "1.1" }));
        await expect(client.register({ instance: { service: "pipe", instanceId: "x", host: "10.0.0.1", port: 80 } })).rejects.toMatchObject({
          code: Code.PermissionDenied,
          rawMessage: "no registering here",
        });
        expect(refused.registry.listServices("")).toEqual([]);
      } finally {
        await refused.close();
      }
    });
  });
}
