import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { startMaxine } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/domain/logger.js";
import { conformanceService } from "./conformance-service.js";
import { ServerCompatRequestSchema, ServerCompatResponseSchema } from "./gen/connectrpc/conformance/v1/server_compat_pb.js";

// The server under test of the conformance suite (connectconformance --mode
// server): reads a size-prefixed ServerCompatRequest from stdin, starts
// Maxine on 127.0.0.1, port 0, with the ConformanceService mounted on its
// pipeline, writes the size-prefixed ServerCompatResponse to stdout, and
// serves until stdin closes or a signal arrives. MAXINE_FAST_PATH in the
// environment picks the framing (on: Maxine's, off: connect-es's).
// scripts/test-conformance.sh builds and runs it.

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    chunks.push(c);
    size += c.length;
    const all = Buffer.concat(chunks, size);
    if (all.length >= 4 && all.length >= 4 + all.readUInt32BE(0)) return all.subarray(4, 4 + all.readUInt32BE(0));
  }
  throw new Error("stdin ended before a whole ServerCompatRequest");
}

async function main(): Promise<void> {
  const req = fromBinary(ServerCompatRequestSchema, await readStdin());
  if (req.useTls) throw new Error("TLS is not supported yet (the conformance config declares supports_tls: false)");
  const env: Record<string, string> = {
    MAXINE_HOST: "127.0.0.1",
    MAXINE_PORT: "0",
    MAXINE_SHUTDOWN_GRACE: "1s",
    MAXINE_FAST_PATH: process.env.MAXINE_FAST_PATH ?? "on",
  };
  if (req.messageReceiveLimit > 0) env.MAXINE_MAX_MESSAGE_BYTES = String(req.messageReceiveLimit);
  const maxine = await startMaxine(loadConfig([], env), { logger: silentLogger, services: [conformanceService()] });
  const res = toBinary(ServerCompatResponseSchema, create(ServerCompatResponseSchema, { host: "127.0.0.1", port: maxine.port }));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(res.length);
  process.stdout.write(Buffer.concat([prefix, res]));
  const stop = (): void => {
    maxine.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  process.stdin.once("end", stop);
  process.stdin.resume();
}

main().catch((err: unknown) => {
  process.stderr.write(`conformance server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
