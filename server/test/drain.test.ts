import http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { HeartbeatRequestSchema, WatchServicesRequestSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { expect, it } from "vitest";
import { grpcFrame } from "./support/grpc-frame.js";
import { startInProcess } from "./support/in-process.js";

// Draining: on close the server ends every stream with UNAVAILABLE and then
// closes connections whose streams it has all ended, without waiting for
// the client to close its side (a client busy reconnecting thousands of
// sessions can take seconds for that).

it("ends open streams with UNAVAILABLE and closes the connection although the client does not close its streams", async () => {
  const server = await startInProcess({ MAXINE_SHUTDOWN_GRACE: "10s" });
  const session = http2.connect(server.url);
  session.on("error", () => {});
  const statuses: string[] = [];
  const open = (path: string, body: Uint8Array, endRequest: boolean) => {
    const stream = session.request({ ":method": "POST", ":path": `/maxine.registry.v1.RegistryService/${path}`, "content-type": "application/grpc", te: "trailers" });
    stream.on("trailers", (t) => statuses.push(`${path} ${t["grpc-status"]}`));
    stream.on("response", (h) => {
      if (h["grpc-status"] !== undefined) statuses.push(`${path} ${h["grpc-status"]}`);
    });
    stream.on("data", () => {});
    stream.on("error", () => {});
    if (endRequest) stream.end(grpcFrame(body));
    else stream.write(grpcFrame(body)); // the request side stays open: the client never ends it
    return stream;
  };
  const watch = open("WatchServices", toBinary(WatchServicesRequestSchema, create(WatchServicesRequestSchema, {})), true);
  const hb = open("Heartbeat", toBinary(HeartbeatRequestSchema, create(HeartbeatRequestSchema, { sequence: 1n })), false);
  // both are served: the snapshot and the beat's answer arrive
  await Promise.all([watch, hb].map((s) => new Promise<void>((resolve) => s.once("data", () => resolve()))));
  const closedConnection = new Promise<void>((resolve) => session.once("close", () => resolve()));
  const t0 = performance.now();
  await server.close();
  const took = performance.now() - t0;
  await closedConnection;
  expect(statuses.sort()).toEqual(["Heartbeat 14", "WatchServices 14"]);
  expect(took).toBeLessThan(2000); // not the 10 s grace
});
