import http2 from "node:http2";
import { create, fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import {
  DeregisterRequestSchema,
  DeregisterResponseSchema,
  DiscoverRequestSchema,
  DiscoverResponseSchema,
  ListServicesRequestSchema,
  ListServicesResponseSchema,
  RegisterRequestSchema,
  RegisterResponseSchema,
  WatchServicesRequestSchema,
  WatchServicesResponseSchema,
  type ServingStatus,
} from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { grpcFrame } from "./support/grpc-frame.js";
import { startInProcess } from "./support/in-process.js";

// gRPC and gRPC-Web framed by Maxine's transport against the reference: a
// server with MAXINE_FAST_PATH=off, where connect-es frames the same
// handlers. Both get the same request bytes in the same order; the status,
// message and every answer (decoded, registry ids and times aside) must be
// the same.

const SERVICE = "/maxine.registry.v1.RegistryService";

interface Answer {
  code: string | undefined;
  message: string;
  messages: unknown[];
}

/** comparable decodes each enveloped answer, dropping what differs between two servers (registry ids, times). */
function comparable(body: Buffer, output: DescMessage): unknown[] {
  const out: unknown[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const n = body.readUInt32BE(at + 1);
    if ((body[at]! & 0x80) === 0) {
      const m = fromBinary(output, body.subarray(at + 5, at + 5 + n));
      out.push(JSON.parse(JSON.stringify(m, (k, v) => (typeof v === "bigint" ? String(v) : ["registryId", "registeredAt", "updatedAt", "leaseExpiresAt"].includes(k) ? undefined : v))));
    }
    at += 5 + n;
  }
  return out;
}

async function grpcCall(session: http2.ClientHttp2Session, method: string, body: Uint8Array, output: DescMessage): Promise<Answer> {
  return new Promise((resolve) => {
    const stream = session.request({ ":method": "POST", ":path": `${SERVICE}/${method}`, "content-type": "application/grpc", te: "trailers" });
    let headers: http2.IncomingHttpHeaders = {};
    let data = Buffer.alloc(0);
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (headers = { ...headers, ...t }));
    stream.on("data", (d: Buffer) => (data = Buffer.concat([data, d])));
    stream.on("error", () => {});
    stream.on("close", () =>
      resolve({ code: headers["grpc-status"] as string | undefined, message: decodeURIComponent(String(headers["grpc-message"] ?? "")), messages: comparable(data, output) }),
    );
    stream.end(body);
  });
}

async function grpcWebCall(url: string, method: string, body: Uint8Array, output: DescMessage): Promise<Answer> {
  const res = await fetch(`${url}${SERVICE}/${method}`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body });
  const data = Buffer.from(await res.arrayBuffer());
  let code = res.headers.get("grpc-status") ?? undefined;
  let message = res.headers.get("grpc-message") ?? "";
  // the status of a gRPC-Web answer with messages is in its trailer frame (flag 0x80)
  for (let at = 0; at + 5 <= data.length; ) {
    const n = data.readUInt32BE(at + 1);
    if ((data[at]! & 0x80) !== 0) {
      for (const line of data.subarray(at + 5, at + 5 + n).toString().split("\r\n")) {
        const [k, ...v] = line.split(":");
        if (k?.trim().toLowerCase() === "grpc-status") code = v.join(":").trim();
        if (k?.trim().toLowerCase() === "grpc-message") message = v.join(":").trim();
      }
    }
    at += 5 + n;
  }
  return { code, message: decodeURIComponent(message), messages: comparable(data, output) };
}

const bin = <T extends DescMessage>(schema: T, init: Parameters<typeof create<T>>[1]) => toBinary(schema, create(schema, init));

/** CASES are request bodies in order: valid, invalid, and undecodable framing, for every unary method and the watch. */
const CASES: Array<[string, string, Uint8Array, DescMessage]> = [
  ["register", "Register", grpcFrame(bin(RegisterRequestSchema, { instance: { service: "ref", instanceId: "a", host: "10.0.0.1", port: 80, tags: ["x"] } })), RegisterResponseSchema],
  ["register again (idempotent)", "Register", grpcFrame(bin(RegisterRequestSchema, { instance: { service: "ref", instanceId: "a", host: "10.0.0.1", port: 80, tags: ["x"] } })), RegisterResponseSchema],
  ["register, port 0", "Register", grpcFrame(bin(RegisterRequestSchema, { instance: { service: "ref", instanceId: "b", host: "10.0.0.1", port: 0 } })), RegisterResponseSchema],
  ["register, unknown status", "Register", grpcFrame(bin(RegisterRequestSchema, { instance: { service: "ref", instanceId: "b", host: "10.0.0.1", port: 80, status: 9 as ServingStatus } })), RegisterResponseSchema],
  ["register, a tag with NUL", "Register", grpcFrame(bin(RegisterRequestSchema, { instance: { service: "ref", instanceId: "b", host: "10.0.0.1", port: 80, tags: ["a\u0000"] } })), RegisterResponseSchema],
  ["discover with every instance", "Discover", grpcFrame(bin(DiscoverRequestSchema, { service: "ref", includeAll: true })), DiscoverResponseSchema],
  ["discover, a hash strategy without a key", "Discover", grpcFrame(bin(DiscoverRequestSchema, { service: "ref", strategy: 5 })), DiscoverResponseSchema],
  ["discover, nothing there", "Discover", grpcFrame(bin(DiscoverRequestSchema, { service: "nobody" })), DiscoverResponseSchema],
  ["discover, an empty message", "Discover", grpcFrame(new Uint8Array()), DiscoverResponseSchema],
  ["list services", "ListServices", grpcFrame(bin(ListServicesRequestSchema, {})), ListServicesResponseSchema],
  ["list services, bad namespace", "ListServices", grpcFrame(bin(ListServicesRequestSchema, { namespace: "Bad NS" })), ListServicesResponseSchema],
  ["watch, a bad service name", "WatchServices", grpcFrame(bin(WatchServicesRequestSchema, { services: ["Bad Name"] })), WatchServicesResponseSchema],
  ["deregister", "Deregister", grpcFrame(bin(DeregisterRequestSchema, { key: { service: "ref", instanceId: "a" } })), DeregisterResponseSchema],
  ["deregister, gone", "Deregister", grpcFrame(bin(DeregisterRequestSchema, { key: { service: "ref", instanceId: "a" } })), DeregisterResponseSchema],
  ["deregister, no key", "Deregister", grpcFrame(bin(DeregisterRequestSchema, {})), DeregisterResponseSchema],
  ["two messages for a unary call", "Discover", Buffer.concat([grpcFrame(bin(DiscoverRequestSchema, { service: "ref" })), grpcFrame(bin(DiscoverRequestSchema, { service: "ref" }))]), DiscoverResponseSchema],
  ["no message", "Discover", new Uint8Array(), DiscoverResponseSchema],
  ["a message cut short", "Discover", grpcFrame(bin(DiscoverRequestSchema, { service: "ref" })).subarray(0, 7), DiscoverResponseSchema],
];

for (const [protocol, ask] of [
  ["gRPC", (s: Maxine & { url: string }, session: http2.ClientHttp2Session, m: string, b: Uint8Array, o: DescMessage) => grpcCall(session, m, b, o)],
  ["gRPC-Web", (s: Maxine & { url: string }, _session: http2.ClientHttp2Session, m: string, b: Uint8Array, o: DescMessage) => grpcWebCall(s.url, m, b, o)],
] as const) {
  describe(`${protocol}: Maxine's framing answers the same bytes as connect-es`, () => {
    let fast: Maxine & { url: string };
    let reference: Maxine & { url: string };
    let fastSession: http2.ClientHttp2Session;
    let referenceSession: http2.ClientHttp2Session;
    beforeAll(async () => {
      fast = await startInProcess();
      reference = await startInProcess({ MAXINE_FAST_PATH: "off" });
      fastSession = http2.connect(fast.url);
      referenceSession = http2.connect(reference.url);
    });
    afterAll(async () => {
      fastSession.close();
      referenceSession.close();
      await fast.close();
      await reference.close();
    });

    it.each(CASES)("%s", async (_what, method, body, output) => {
      const [a, b] = await Promise.all([ask(fast, fastSession, method, body, output), ask(reference, referenceSession, method, body, output)]);
      expect(a.code).toBeDefined();
      expect(a).toEqual(b);
    });
  });
}
