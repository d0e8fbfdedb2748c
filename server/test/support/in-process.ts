import { startMaxine, type Maxine, type StartOptions } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { silentLogger } from "../../src/domain/logger.js";

/**
 * startInProcess runs a real server (real sockets, port 0 on loopback) inside
 * the test process. Its service configuration is kept in memory
 * (MAXINE_DATA_DIR=off) unless env names a directory: test files run side by
 * side, and one data directory serves one server.
 */
export async function startInProcess(env: Record<string, string> = {}, opts: Partial<StartOptions> = {}): Promise<Maxine & { url: string }> {
  const config = loadConfig([], { MAXINE_HOST: "127.0.0.1", MAXINE_PORT: "0", MAXINE_SHUTDOWN_GRACE: "1s", MAXINE_DATA_DIR: "off", ...env });
  const m = await startMaxine(config, { logger: silentLogger, ...opts });
  return Object.assign(m, { url: `http://127.0.0.1:${m.port}` });
}

const SERVICE = "maxine.registry.v1.RegistryService";

/** postJson calls a unary RPC with Connect's JSON mapping over plain fetch (HTTP/1.1). */
export async function postJson(url: string, method: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/${SERVICE}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** envelope frames one Connect streaming message (flags byte, big-endian length, payload). */
export function envelope(json: unknown, flags = 0): Uint8Array {
  const payload = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + payload.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, payload.length);
  out.set(payload, 5);
  return out;
}

/**
 * JsonStream reads a Connect server stream (application/connect+json) from a
 * fetch response: each message as parsed JSON, and the end-of-stream frame.
 */
export class JsonStream {
  private buf = new Uint8Array(0);
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  end: any;

  constructor(res: Response) {
    this.reader = res.body!.getReader();
  }

  /** next resolves with the next message, or undefined at end of stream (see end). */
  async next(): Promise<any> {
    for (;;) {
      if (this.buf.length >= 5) {
        const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(1);
        if (this.buf.length >= 5 + len) {
          const flags = this.buf[0]!;
          const msg = JSON.parse(new TextDecoder().decode(this.buf.subarray(5, 5 + len)));
          this.buf = this.buf.slice(5 + len);
          if (flags & 0x02) {
            this.end = msg;
            return undefined;
          }
          return msg;
        }
      }
      const { value, done } = await this.reader.read();
      if (done) return undefined;
      const merged = new Uint8Array(this.buf.length + value.length);
      merged.set(this.buf);
      merged.set(value, this.buf.length);
      this.buf = merged;
    }
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }
}

/** watchJson opens WatchServices over plain fetch with the Connect JSON streaming format. */
export async function watchJson(url: string, body: unknown, signal?: AbortSignal): Promise<JsonStream> {
  const res = await fetch(`${url}/${SERVICE}/WatchServices`, {
    method: "POST",
    headers: { "content-type": "application/connect+json" },
    body: envelope(body),
    signal,
  });
  if (res.status !== 200) throw new Error(`WatchServices: HTTP ${res.status}`);
  return new JsonStream(res);
}
