import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

const PROTO_ROOT = fileURLToPath(new URL("../../../proto", import.meta.url));

/**
 * healthClient is an independent grpc.health.v1.Health client: @grpc/grpc-js
 * with the vendored health.proto loaded at run time (no generated code).
 */
export function healthClient(port: number): grpc.Client & Record<string, any> {
  const def = protoLoader.loadSync("grpc/health/v1/health.proto", { includeDirs: [PROTO_ROOT], enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const Ctor = pkg.grpc.health.v1.Health as typeof grpc.Client;
  return new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
}
