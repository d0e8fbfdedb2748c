// The Discover answer the bare reference servers send (bench/plain-http-server.mjs
// as JSON, bench/plain-http2-server.mjs as protobuf in a gRPC frame): one
// instance, of the size Maxine answers in bench/discover-throughput.mjs.
export const DISCOVER_ANSWER = {
  instance: {
    namespace: "default",
    service: "discover-bench",
    instanceId: "d1",
    host: "10.7.0.1",
    port: 8001,
    weight: 100,
    status: "SERVING_STATUS_SERVING",
    registeredAt: "2026-11-23T10:00:00.000Z",
    updatedAt: "2026-11-23T10:00:00.000Z",
    createRevision: "1",
    modRevision: "1",
  },
  revision: "10",
  registryId: "0123456789abcdef",
};
