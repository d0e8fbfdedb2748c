import { gunzipSync } from "node:zlib";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ByteBudget } from "../rpc/byte-budget.js";

// Enveloped messages, as gRPC, gRPC-Web and Connect streams frame them: a
// flags byte (1: compressed; gRPC-Web 0x80: trailers; Connect 0x02: end of
// stream), a big-endian 32-bit length, the payload.

/** FLAG_COMPRESSED marks a compressed payload. */
export const FLAG_COMPRESSED = 0x01;

/** Envelope is one message read from a request body. */
export interface Envelope {
  readonly flags: number;
  readonly data: Uint8Array;
}

/**
 * EnvelopeReader splits a request body into messages as chunks arrive, in
 * time linear in the bytes received however small the chunks (each byte is
 * copied at most once). A message's length prefix is checked against the
 * message size limit and reserved from the connection's budget before any
 * of its payload is buffered; the reservation is given back when the
 * message is complete or the body ends (close).
 */
export class EnvelopeReader {
  /** chunks are the bytes received and not yet read: NO_CHUNKS (shared) when none, so an idle stream holds no array. */
  private chunks: Buffer[] = NO_CHUNKS;
  private size = 0;
  private want = -1;
  private flags = 0;
  private reserved = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly budget: ByteBudget,
    private readonly encoding: "identity" | "gzip",
  ) {}

  /** push adds a chunk and returns the messages it completed. */
  push(chunk: Buffer): Envelope[] {
    if (chunk.length > 0) {
      if (this.chunks === NO_CHUNKS) this.chunks = [chunk];
      else this.chunks.push(chunk);
      this.size += chunk.length;
    }
    let out: Envelope[] | undefined;
    for (;;) {
      if (this.want < 0) {
        if (this.size < 5) break;
        const head = this.take(5);
        this.flags = head[0]!;
        const length = head.readUInt32BE(1);
        if (length > this.maxBytes) {
          throw new ConnectError(
            `request: a message of ${length} bytes exceeds the limit of ${this.maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`,
            Code.ResourceExhausted,
          );
        }
        this.want = length;
        if (length > this.size) {
          this.budget.reserve(length);
          this.reserved = length;
        }
      }
      if (this.size < this.want) break;
      const data = this.take(this.want);
      this.want = -1;
      this.giveBack();
      (out ??= []).push({ flags: this.flags, data: (this.flags & FLAG_COMPRESSED) !== 0 ? this.inflate(data) : data });
    }
    if (this.size === 0) this.chunks = NO_CHUNKS;
    return out ?? NONE;
  }

  /** pending reports whether part of a message is buffered (a body that ends here was cut short). */
  get pending(): boolean {
    return this.size > 0 || this.want >= 0;
  }

  /** close gives back what the reader reserved; the body is over, whether complete or not. */
  close(): void {
    this.giveBack();
    this.chunks = NO_CHUNKS;
    this.size = 0;
  }

  private giveBack(): void {
    if (this.reserved === 0) return;
    this.budget.release(this.reserved);
    this.reserved = 0;
  }

  /** take removes n bytes from the front of the buffered chunks. */
  private take(n: number): Buffer {
    this.size -= n;
    const first = this.chunks[0];
    if (n === 0) return EMPTY;
    if (first!.length === n) {
      this.chunks.shift();
      return first!;
    }
    if (first!.length > n) {
      this.chunks[0] = first!.subarray(n);
      return first!.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    let i = 0;
    while (at < n) {
      const c = this.chunks[i]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) i++;
      else this.chunks[i] = c.subarray(k);
    }
    this.chunks.splice(0, i);
    return out;
  }

  private inflate(payload: Uint8Array): Uint8Array {
    if (this.encoding !== "gzip") {
      throw new ConnectError("request: a compressed message, but the request names no encoding", Code.Internal);
    }
    return gunzip(payload, this.maxBytes);
  }
}

const NONE: Envelope[] = [];
const NO_CHUNKS: Buffer[] = [];
const EMPTY = Buffer.alloc(0);

/** gunzip decompresses a request body or message: corrupt input is INVALID_ARGUMENT, too large RESOURCE_EXHAUSTED. */
export function gunzip(payload: Uint8Array, maxBytes: number): Buffer {
  try {
    return gunzipSync(payload, { maxOutputLength: maxBytes });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE") {
      throw new ConnectError(`request: decompressed, the message exceeds ${maxBytes} bytes (MAXINE_MAX_MESSAGE_BYTES)`, Code.ResourceExhausted);
    }
    throw new ConnectError(`request: not valid gzip: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

/** envelope frames one message with flags (0 by default). */
export function envelope(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = flags;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}
