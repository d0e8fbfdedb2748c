#!/usr/bin/env node
// The reference for the Discover throughput target: a plain node:http server
// that reads a JSON body, parses it and answers a fixed JSON of the size of
// a Discover answer. It does no registry work at all, so it is the ceiling
// one Node.js process with HTTP/1.1 reaches on this machine.
//
// Usage: node bench/plain-http-server.mjs; prints its port on stdout. With
// BENCH_ANSWER_JSON naming a file, it answers that file's bytes (the bench
// saves Maxine's own answer there, so both send the same bytes).
import { readFileSync } from "node:fs";
import http from "node:http";
import { DISCOVER_ANSWER } from "./discover-answer.mjs";

const answer = process.env.BENCH_ANSWER_JSON ? readFileSync(process.env.BENCH_ANSWER_JSON) : Buffer.from(JSON.stringify(DISCOVER_ANSWER));
const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    JSON.parse(Buffer.concat(chunks).toString("utf8"));
    res.writeHead(200, { "content-type": "application/json", "content-length": answer.length });
    res.end(answer);
  });
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
