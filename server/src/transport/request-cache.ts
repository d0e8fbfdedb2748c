import type { Message } from "@bufbuild/protobuf";
import type { UnaryHandler } from "../rpc/service.js";
import type { Codec } from "./codec.js";

/**
 * RequestCache keeps decoded requests of read RPCs: callers repeat the same
 * request (one service, one filter), so up to maxEntries small bodies per
 * method and codec keep their decoded message. Handlers that set
 * cacheRequests only read their request, so sharing one is safe. The oldest
 * entry makes room for a new one. The composition root builds one per server.
 */
export class RequestCache {
  private readonly byMethod = new Map<UnaryHandler, Map<Codec, Map<string, Message>>>();

  constructor(
    private readonly maxEntries = 512,
    private readonly maxBodyBytes = 1024,
  ) {}

  /** decode returns the decoded request for bytes, from the cache when the same body was decoded before. */
  decode(handler: UnaryHandler, codec: Codec, bytes: Uint8Array): Message {
    if (bytes.length > this.maxBodyBytes) return codec.decode(handler.info.input, bytes);
    const key = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("latin1");
    let byCodec = this.byMethod.get(handler);
    if (byCodec === undefined) this.byMethod.set(handler, (byCodec = new Map()));
    let cache = byCodec.get(codec);
    const hit = cache?.get(key);
    if (hit !== undefined) return hit;
    const request = codec.decode(handler.info.input, bytes);
    if (cache === undefined) byCodec.set(codec, (cache = new Map()));
    if (cache.size >= this.maxEntries) cache.delete(cache.keys().next().value!);
    cache.set(key, request);
    return request;
  }
}
