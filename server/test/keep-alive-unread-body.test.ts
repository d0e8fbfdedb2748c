import http from "node:http";
import type net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Maxine } from "../src/app.js";
import { envelope, startInProcess } from "./support/in-process.js";

// An HTTP/1.1 request answered before its body ended (a message over
// MAXINE_MAX_MESSAGE_BYTES) must not stall the keep-alive connection it came
// on: the rest of the body is read and dropped, and the connection's next
// request is parsed and answered. Both framings: Maxine's own
// (MAXINE_FAST_PATH=on) and connect-es (off, which serves every call).

const SERVICE = "/maxine.registry.v1.RegistryService";
const LIMIT = 1024;
/** HEAD is what a split body sends first, in two writes: a Connect envelope's 5-byte prefix, then 10 bytes of the message. */
const HEAD = 15;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  socket: net.Socket;
  /** early: the answer's headers came before the body's end was sent. */
  early: boolean;
}

/**
 * post sends one request through agent and reads the whole answer; it fails
 * after 3 s (a request never parsed hangs). With split, only the body's
 * first HEAD bytes go first and the rest 20 ms later, so a server that
 * answers as soon as it sees the envelope's length answers before the body
 * ended. With chunked the body has no content-length.
 */
function post(agent: http.Agent, url: string, path: string, contentType: string, body: Uint8Array, opts: { split?: boolean; chunked?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { "content-type": contentType };
    if (opts.chunked !== true) headers["content-length"] = body.length;
    let rest: NodeJS.Timeout | undefined;
    const req = http.request(`${url}${path}`, { method: "POST", agent, headers }, (res) => {
      const early = rest !== undefined;
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), socket: req.socket!, early });
      });
      res.on("error", reject);
    });
    const timer = setTimeout(() => {
      clearTimeout(rest);
      req.destroy();
      reject(new Error(`POST ${path}: no answer within 3 s`));
    }, 3000);
    req.on("error", (err) => {
      clearTimeout(timer);
      clearTimeout(rest);
      reject(err);
    });
    if (opts.split === true) {
      req.write(body.subarray(0, 5));
      req.write(body.subarray(5, HEAD));
      rest = setTimeout(() => {
        rest = undefined;
        req.end(body.subarray(HEAD));
      }, 20);
    }
    else req.end(body);
  });
}

const json = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
/** big is a request of about 5 KB, five times MAXINE_MAX_MESSAGE_BYTES. */
const big = { service: "s".repeat(5000) };

const cases = [
  { name: "unary Discover (content-length)", path: `${SERVICE}/Discover`, type: "application/json", encode: json, chunked: false },
  { name: "unary Discover (chunked)", path: `${SERVICE}/Discover`, type: "application/json", encode: json, chunked: true },
  { name: "server-stream WatchServices (content-length)", path: `${SERVICE}/WatchServices`, type: "application/connect+json", encode: envelope, chunked: false },
  { name: "server-stream WatchServices (chunked)", path: `${SERVICE}/WatchServices`, type: "application/connect+json", encode: envelope, chunked: true },
];

describe.each(["on", "off"])("MAXINE_FAST_PATH=%s: an HTTP/1.1 request answered over the limit before its body ended", (fastPath) => {
  let server: (Maxine & { url: string }) | undefined;
  let agent: http.Agent | undefined;

  afterEach(async () => {
    agent?.destroy();
    await server?.close();
  });

  it.each(cases)("$name: every follow-up request on the keep-alive connection is answered", async (c) => {
    server = await startInProcess({ MAXINE_MAX_MESSAGE_BYTES: String(LIMIT), MAXINE_FAST_PATH: fastPath });
    agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<net.Socket>();
    for (let round = 0; round < 5; round++) {
      const refused = await post(agent, server.url, c.path, c.type, c.encode(big), { split: true, chunked: c.chunked });
      sockets.add(refused.socket);
      expect(refused.body.toString()).toContain("resource_exhausted");
      // Maxine's framing keeps the connection of a body whose length fits what is drained. One of unknown length
      // answered before it ended may be cut while it drains, and connect-es destroys a streamed body it stops
      // reading (which can then not be drained): such answers say "connection: close".
      if (fastPath === "on" && !c.chunked) expect(refused.headers.connection).toBe("keep-alive");
      if (c.chunked && refused.early) expect(refused.headers.connection).toBe("close");
      for (let i = 0; i < 3; i++) {
        const next = await post(agent, server.url, `${SERVICE}/ListServices`, "application/json", json({}));
        expect(next.status).toBe(200);
        expect(JSON.parse(next.body.toString())).toHaveProperty("registryId");
        sockets.add(next.socket);
      }
    }
    // Maxine's framing served all 20 requests with a content-length on one connection
    if (fastPath === "on" && !c.chunked) expect(sockets.size).toBe(1);
  });
});
