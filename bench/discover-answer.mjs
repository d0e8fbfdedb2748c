// The Discover answer the bare reference servers send (bench/plain-http-server.mjs
// as JSON, bench/plain-http2-server.mjs as protobuf in a gRPC frame): one
// instance, of the shape and size Maxine answers in bench/discover-throughput.mjs
// (which passes the reference servers Maxine's own answer instead).
export const DISCOVER_ANSWER = {
  instance: {
    namespace: "default",
    service: "discover-bench",
    instanceId: "d1",
    host: "10.7.0.1",
    port: 8001,
    weight: 100,
    status: "SERVING_STATUS_SERVING",
    registeredAt: "2026-11-23T10:00:00.513Z",
    updatedAt: "2026-11-23T10:00:00.513Z",
    createRevision: "1",
    modRevision: "1",
    owner: "anonymous",
  },
  revision: "10",
  registryId: "01234567-89ab-cdef-0123-456789abcdef",
};
