import { invalid } from "../domain/errors.js";

/** ConfigValueLimits bound a configuration request; each is a server setting named in the error a client gets. */
export interface ConfigValueLimits {
  /** maxValueBytes bounds a value (MAXINE_CONFIG_MAX_VALUE_BYTES). */
  readonly maxValueBytes: number;
  /** maxKeysPerService bounds a service's keys (MAXINE_CONFIG_MAX_KEYS_PER_SERVICE). */
  readonly maxKeysPerService: number;
  /** historyDepth is how many versions of a key are kept (MAXINE_CONFIG_HISTORY_DEPTH). */
  readonly historyDepth: number;
  /** maxWatchServices bounds the services one watch names (MAXINE_MAX_WATCH_SERVICES). */
  readonly maxWatchServices: number;
}

const KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$/;
const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,127}$/;

/** configKeyOf validates a configuration key. */
export function configKeyOf(field: string, value: string): string {
  if (value === "") throw invalid(field, "is required");
  if (!KEY.test(value)) {
    throw invalid(field, `must be 1..256 characters of [A-Za-z0-9._/-] starting with a letter or digit, got ${JSON.stringify(value.length > 300 ? `${value.slice(0, 300)}...` : value)}`);
  }
  return value;
}

/** valueOf validates a value's size. */
export function valueOf(field: string, value: Uint8Array, limits: ConfigValueLimits): Uint8Array {
  if (value.length > limits.maxValueBytes) {
    throw invalid(field, `must be at most ${limits.maxValueBytes} bytes (MAXINE_CONFIG_MAX_VALUE_BYTES), got ${value.length}`);
  }
  return value;
}

/** contentTypeOf validates a content type; empty means application/octet-stream. */
export function contentTypeOf(field: string, value: string): string {
  if (value === "") return "application/octet-stream";
  if (!CONTENT_TYPE.test(value)) throw invalid(field, `must be 1..128 printable ASCII characters (like application/json), got ${JSON.stringify(value.slice(0, 200))}`);
  return value;
}

/** versionOf validates a version number (a uint64 on the wire) as one the server can count to. */
export function versionOf(field: string, value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(field, `must be at most ${Number.MAX_SAFE_INTEGER}, got ${value}`);
  return Number(value);
}
