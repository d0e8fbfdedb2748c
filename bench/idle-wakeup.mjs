#!/usr/bin/env node
// What waking an idle server costs: one unary call at a time over one HTTP/2
// connection (a raw node:http2 client), back to back and after 100 ms and
// 300 ms of idle (the fan-out bench pauses 300 ms between trials), against
// Maxine (Discover; Register of a new instance) and a bare node:http2 server
// answering a fixed gRPC frame (bench/plain-http2-server.mjs). The median
// of 40 calls (2 unmeasured first) each. Both processes, client and server,
// sleep between calls: the step from back to back to after idle is what
// waking them costs on this machine, for a server that does nothing at all
// and for Maxine alike. Prints a table; writes nothing.
//
// Usage: node bench/idle-wakeup.mjs [calls=40]
import { spawn } from "node:child_process";
import http2 from "node:http2";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema, RegisterRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { startServer } from "./support.mjs";

const CALLS = Number(process.argv[2] ?? 40);
const GAPS = [0, 100, 300];
const frame = (schema, init) => {
  const m = toBinary(schema, create(schema, init));
  const f = Buffer.alloc(5 + m.length);
  f.writeUInt32BE(m.length, 1);
  f.set(m, 5);
  return f;
};

/** medianMs times CALLS calls of path (body made per call), gap ms apart, on one connection. */
async function medianMs(port, path, body, gap) {
  const c = http2.connect(`http://127.0.0.1:${port}`);
  const lat = [];
  try {
    for (let i = 0; i < CALLS + 2; i++) {
      const b = body(i);
      const t0 = performance.now();
      await new Promise((resolve, reject) => {
        const r = c.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
        r.on("response", () => lat.push(performance.now() - t0));
        r.on("error", reject);
        r.resume();
        r.on("end", resolve);
        r.end(b);
      });
      await new Promise((r) => setTimeout(r, gap));
    }
  } finally {
    c.close();
  }
  const s = lat.slice(2).sort((a, b) => a - b);
  return s[s.length >> 1];
}

const discover = () => frame(DiscoverRequestSchema, { service: "wake" });
let seq = 0;
const register = () => frame(RegisterRequestSchema, { instance: { service: "wake", instanceId: `w-${seq++}`, host: "10.0.0.1", port: 80 } });
const rows = [];

const bare = spawn(process.execPath, [fileURLToPath(new URL("./plain-http2-server.mjs", import.meta.url))], { stdio: ["ignore", "pipe", "inherit"] });
try {
  const port = await new Promise((resolve) => bare.stdout.once("data", (d) => resolve(Number(String(d).trim()))));
  const out = [];
  for (const g of GAPS) out.push(await medianMs(port, "/x", discover, g));
  rows.push(["bare node:http2, fixed frame", ...out]);
} finally {
  bare.kill("SIGTERM");
}
const server = await startServer({ MAXINE_DATA_DIR: "off" });
try {
  await medianMs(server.port, "/maxine.registry.v1.RegistryService/Register", register, 0); // a first instance, so that Discover finds one
  for (const [name, path, body] of [
    ["Maxine Discover", "/maxine.registry.v1.RegistryService/Discover", discover],
    ["Maxine Register (a new instance)", "/maxine.registry.v1.RegistryService/Register", register],
  ]) {
    const out = [];
    for (const g of GAPS) out.push(await medianMs(server.port, path, body, g));
    rows.push([name, ...out]);
  }
} finally {
  await server.stop();
}
console.log(`one call at a time over one HTTP/2 connection, median of ${CALLS}: response headers after the request, ms`);
console.log(`${"server".padEnd(34)} | ${GAPS.map((g) => (g === 0 ? "back to back" : `after ${g} ms idle`).padStart(17)).join(" | ")}`);
for (const [name, ...v] of rows) console.log(`${name.padEnd(34)} | ${v.map((x) => x.toFixed(2).padStart(17)).join(" | ")}`);
