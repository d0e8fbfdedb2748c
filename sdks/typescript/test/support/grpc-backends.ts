import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

const PROTO_ROOT = fileURLToPath(new URL("../../../../proto", import.meta.url));

/** Backend is a real gRPC server (grpc.health.v1.Health/Check) that counts its calls and can be told to fail. */
export interface Backend {
  readonly port: number;
  /** hits counts the Check calls it received (answered or failed). */
  hits: number;
  /** failing makes every call answer UNAVAILABLE. */
  failing: boolean;
  /** streamLength is how many answers Watch sends before it ends (default 1). */
  streamLength: number;
  close(): Promise<void>;
}

/** startBackend starts one backend on 127.0.0.1, a port chosen by the OS. */
export async function startBackend(): Promise<Backend> {
  const def = protoLoader.loadSync("grpc/health/v1/health.proto", { includeDirs: [PROTO_ROOT], enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as any; // eslint-disable-line @typescript-eslint/no-explicit-any -- loaded at run time
  const server = new grpc.Server();
  const backend = { port: 0, hits: 0, failing: false, streamLength: 1, close: async () => undefined } as Backend;
  server.addService(pkg.grpc.health.v1.Health.service, {
    check(_call: unknown, callback: grpc.sendUnaryData<unknown>) {
      backend.hits++;
      if (backend.failing) callback({ code: grpc.status.UNAVAILABLE, details: "backend told to fail" });
      else callback(null, { status: "SERVING" });
    },
    // a server stream: UNAVAILABLE when failing, otherwise `streamLength` answers and the end
    watch(call: grpc.ServerWritableStream<unknown, unknown>) {
      backend.hits++;
      if (backend.failing) {
        call.emit("error", { code: grpc.status.UNAVAILABLE, details: "backend told to fail" });
        return;
      }
      for (let i = 0; i < backend.streamLength; i++) call.write({ status: "SERVING" });
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return Object.assign(backend, {
    port,
    // forced: a client may still hold a stream it abandoned (connect-node keeps it open until its session closes)
    close: async () => server.forceShutdown(),
  });
}
