import cluster from "node:cluster";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { openConfigStore, startMaxine } from "../../src/app.js";
import { runPrimary } from "../../src/cluster/primary.js";
import { WorkerLink, workerConfig } from "../../src/cluster/worker-link.js";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/domain/logger.js";
import { conformanceService } from "./conformance-service.js";
import { ServerCompatRequestSchema, ServerCompatResponseSchema } from "./gen/connectrpc/conformance/v1/server_compat_pb.js";

// The server under test of the conformance suite (connectconformance --mode
// server): reads a size-prefixed ServerCompatRequest from stdin, starts
// Maxine on 127.0.0.1, port 0, with the ConformanceService mounted on its
// pipeline, writes the size-prefixed ServerCompatResponse to stdout, and
// serves until stdin closes or a signal arrives. MAXINE_FAST_PATH in the
// environment picks the framing (on: Maxine's, off: connect-es's). Maxine
// is configured as a user would: the request's limits and TLS become
// MAXINE_* settings, the TLS files written to a private temporary directory
// (removed on exit).
// With MAXINE_WORKERS > 1 (and MAXINE_STORE=redis, MAXINE_REDIS_URL) in its
// environment it runs as Maxine's main does: a cluster primary that reads
// the request and reports the port, and workers serving it, each a replica
// on the shared Redis registry (its name: this server's pid).
// scripts/test-conformance.sh builds and runs it.

/** SHARED are the settings taken from this process's environment as they are: the store and the workers. */
const SHARED = ["MAXINE_STORE", "MAXINE_REDIS_URL", "MAXINE_WORKERS"] as const;

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
  const env: Record<string, string> = {
    ...Object.fromEntries(SHARED.flatMap((k) => (process.env[k] !== undefined ? [[k, process.env[k]!]] : []))),
    MAXINE_REDIS_REGISTRY: `conformance-${process.pid}`,
    MAXINE_HOST: "127.0.0.1",
    MAXINE_PORT: "0",
    MAXINE_SHUTDOWN_GRACE: "1s",
    MAXINE_FAST_PATH: process.env.MAXINE_FAST_PATH ?? "on",
  };
  if (req.messageReceiveLimit > 0) {
    // The limit is on what clients send; the suite's handler echoes a request
    // of exactly the limit inside its answer, so answers keep their own
    // (default) limit, MAXINE_MAX_RESPONSE_BYTES.
    env.MAXINE_MAX_MESSAGE_BYTES = String(req.messageReceiveLimit);
  }
  let tlsDir: string | undefined;
  if (req.useTls) {
    if (req.serverCreds === undefined) throw new Error("use_tls without server_creds");
    tlsDir = mkdtempSync(join(tmpdir(), "maxine-conformance-"));
    const file = (name: string, pem: Uint8Array): string => {
      const path = join(tlsDir!, name);
      writeFileSync(path, pem, { mode: 0o600 });
      return path;
    };
    env.MAXINE_TLS_CERT = file("cert.pem", req.serverCreds.cert);
    env.MAXINE_TLS_KEY = file("key.pem", req.serverCreds.key);
    if (req.clientTlsCert.length > 0) {
      // The suite's client certificate is self-signed: it is the CA it must chain to.
      env.MAXINE_TLS_CA = file("client-ca.pem", req.clientTlsCert);
      env.MAXINE_TLS_CLIENT_AUTH = "require";
    }
  }
  const removeTlsDir = (): void => {
    if (tlsDir !== undefined) rmSync(tlsDir, { recursive: true, force: true });
  };
  process.once("exit", removeTlsDir);
  const config = loadConfig([], env);
  const respond = (port: number): void => {
    const res = toBinary(
      ServerCompatResponseSchema,
      create(ServerCompatResponseSchema, { host: "127.0.0.1", port, pemCert: req.useTls ? req.serverCreds!.cert : new Uint8Array() }),
    );
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(res.length);
    process.stdout.write(Buffer.concat([prefix, res]));
  };
  if (config.workers > 1) {
    // the workers read the same settings from their environment (cluster.fork passes process.env on)
    Object.assign(process.env, env);
    const primary = runPrimary({ config, log: silentLogger, exit: (code) => process.exit(code), onListening: respond, openConfig: () => openConfigStore(config, silentLogger) });
    process.stdin.once("end", () => primary.stop("stdin closed"));
    process.stdin.resume();
    return;
  }
  const maxine = await startMaxine(config, { logger: silentLogger, services: [conformanceService()] });
  respond(maxine.port);
  const stop = stopOnSignals(maxine);
  process.stdin.once("end", stop);
  process.stdin.resume();
}

/** stopOnSignals drains maxine and exits on SIGTERM or SIGINT; it returns that stop, for other causes. */
function stopOnSignals(maxine: { close(): Promise<void> }): () => void {
  const stop = (): void => {
    maxine.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  return stop;
}

/** worker serves as one of the primary's workers, with the settings the primary put in the environment. */
async function worker(): Promise<void> {
  const link = new WorkerLink(cluster.worker!.id);
  const maxine = await startMaxine(workerConfig(loadConfig([], process.env), process.env), { logger: silentLogger, services: [conformanceService()], worker: link });
  stopOnSignals(maxine);
  link.listening(maxine.port, maxine.registry.store.registryId);
}

(cluster.isWorker ? worker() : main()).catch((err: unknown) => {
  process.stderr.write(`conformance server: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
