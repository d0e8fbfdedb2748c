import { create, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { ServerReflection, ServerReflectionRequestSchema, type ServerReflectionResponse } from "@maxine/sdk/gen/grpc/reflection/v1/reflection_pb";
import { ServerReflection as ServerReflectionV1alpha } from "@maxine/sdk/gen/grpc/reflection/v1alpha/reflection_pb";
import { describe, expect, it } from "vitest";
import { startInProcess } from "./support/in-process.js";

// Server reflection's answers, request by request, over gRPC and Connect
// (bidirectional streams on HTTP/2), v1 and v1alpha, on both framings.

type Init = Parameters<typeof create<typeof ServerReflectionRequestSchema>>[1];

const requests: Init[] = [
  { messageRequest: { case: "listServices", value: "" } },
  { host: "h", messageRequest: { case: "fileByFilename", value: "maxine/registry/v1/registry.proto" } },
  { messageRequest: { case: "fileContainingSymbol", value: "maxine.registry.v1.Instance.zone" } },
  { messageRequest: { case: "fileByFilename", value: "nope.proto" } },
  { messageRequest: { case: "fileContainingSymbol", value: "grpc.health.v1.Health" } },
  { messageRequest: { case: "allExtensionNumbersOfType", value: "maxine.registry.v1.Instance" } },
  { messageRequest: { case: "fileContainingExtension", value: { containingType: "maxine.registry.v1.Instance", extensionNumber: 100 } } },
];

function files(r: ServerReflectionResponse): string[] {
  if (r.messageResponse.case !== "fileDescriptorResponse") throw new Error(`not files: ${r.messageResponse.case}`);
  return r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b).name);
}

describe.each(["on", "off"])("server reflection with MAXINE_FAST_PATH=%s", (fastPath) => {
  for (const protocol of ["grpc", "connect"] as const) {
    for (const [version, desc] of [["v1", ServerReflection], ["v1alpha", ServerReflectionV1alpha]] as const) {
      it(`answers every request kind over ${protocol}, ${version}`, async () => {
        const server = await startInProcess({ MAXINE_FAST_PATH: fastPath });
        const h2 = new Http2SessionManager(server.url);
        try {
          const transport = protocol === "grpc" ? createGrpcTransport({ baseUrl: server.url, sessionManager: h2 }) : createConnectTransport({ baseUrl: server.url, httpVersion: "2", sessionManager: h2 });
          const client = createClient(desc as typeof ServerReflection, transport);
          const answers: ServerReflectionResponse[] = [];
          // v1alpha's messages are v1's under another package name: the same bytes on the wire
          const input = (async function* () {
            for (const r of requests) yield create(ServerReflectionRequestSchema, r);
          })();
          for await (const a of client.serverReflectionInfo(input)) answers.push(a);
          expect(answers).toHaveLength(requests.length);
          const [list, byName, bySymbol, missing, health, extNumbers, ext] = answers as [ServerReflectionResponse, ...ServerReflectionResponse[]];
          expect(list.messageResponse.case === "listServicesResponse" && list.messageResponse.value.service.map((s) => s.name)).toEqual([
            "envoy.service.discovery.v3.AggregatedDiscoveryService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "maxine.config.v1.ConfigService",
            "maxine.registry.v1.RegistryService",
          ]);
          expect(files(byName!)).toEqual(["maxine/registry/v1/registry.proto", "google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]);
          expect(byName!.validHost).toBe("h");
          expect(byName!.originalRequest?.messageRequest).toEqual({ case: "fileByFilename", value: "maxine/registry/v1/registry.proto" });
          expect(files(bySymbol!)[0]).toBe("maxine/registry/v1/registry.proto");
          expect(missing!.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5, errorMessage: 'file "nope.proto" not found' } });
          expect(files(health!)).toEqual(["grpc/health/v1/health.proto"]);
          expect(extNumbers!.messageResponse).toMatchObject({ case: "allExtensionNumbersResponse", value: { baseTypeName: "maxine.registry.v1.Instance", extensionNumber: [] } });
          expect(ext!.messageResponse).toMatchObject({ case: "errorResponse", value: { errorCode: 5 } });
        } finally {
          h2.abort();
          await server.close();
        }
      });
    }
  }
});
