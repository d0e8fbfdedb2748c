/** grpcFrame wraps one encoded message in a gRPC length-prefixed envelope, for raw HTTP/2 clients in tests. */
export function grpcFrame(body: Uint8Array, compressed = false): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = compressed ? 1 : 0;
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}
