#!/usr/bin/env node
// The reference for Discover over gRPC: a bare node:http2 server (h2c) that
// reads a gRPC request frame, decodes it as a DiscoverRequest (protobuf-es,
// as Maxine does) and answers one fixed gRPC frame holding the same answer as
// bench/plain-http-server.mjs, with grpc-status 0 in the trailers. It does no
// registry work, no routing, no interceptors: the ceiling one Node.js process
// with HTTP/2 reaches on this machine for the same bytes.
//
// Usage: node bench/plain-http2-server.mjs; prints its port on stdout. With
// BENCH_ANSWER_PROTO naming a file, it answers that file's bytes (a
// DiscoverResponse in protobuf: the bench saves Maxine's own answer there).
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { fromBinary, fromJson, toBinary } from "@bufbuild/protobuf";
import { DiscoverRequestSchema, DiscoverResponseSchema } from "@maxine/sdk/gen/maxine/registry/v1/registry_pb";
import { DISCOVER_ANSWER } from "./discover-answer.mjs";

const message = process.env.BENCH_ANSWER_PROTO
  ? readFileSync(process.env.BENCH_ANSWER_PROTO)
  : toBinary(DiscoverResponseSchema, fromJson(DiscoverResponseSchema, DISCOVER_ANSWER));
const frame = Buffer.alloc(5 + message.length);
frame.writeUInt32BE(message.length, 1);
frame.set(message, 5);
const headers = { ":status": 200, "content-type": "application/grpc" };
const trailers = { "grpc-status": "0" };

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on("stream", (stream) => {
  const chunks = [];
  stream.on("data", (c) => chunks.push(c));
  stream.on("end", () => {
    const body = Buffer.concat(chunks);
    fromBinary(DiscoverRequestSchema, body.subarray(5, 5 + body.readUInt32BE(1)));
    stream.respond(headers, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers(trailers));
    stream.end(frame);
  });
  stream.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
