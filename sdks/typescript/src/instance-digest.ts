import { createHash } from "node:crypto";

/**
 * DigestContent is what an instance's content digest covers: the fields of
 * an Instance message a client acts on (a generated Instance fits it).
 * Server-set times and revisions are left out, so an instance re-registered
 * unchanged on a restarted registry keeps its digest.
 */
export interface DigestContent {
  readonly service: string;
  readonly instanceId: string;
  readonly host: string;
  readonly port: number;
  readonly version: string;
  readonly zone: string;
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, string>>;
  readonly weight: number;
  /** status is the ServingStatus number. */
  readonly status: number;
  readonly owner: string;
  /** operatorStatus is the OperatorStatus number. */
  readonly operatorStatus: number;
}

/**
 * instanceDigest is the content digest of an instance, as defined on
 * WatchHoldings in registry.proto: the first 8 bytes (big-endian) of the
 * SHA-256 of the listed items, each length-prefixed. A watcher names what it
 * holds with it when it resumes (WatchServicesRequest.held), and the server
 * compares it with the digest of each instance it has, so both sides must
 * compute it alike; the Go and Python SDKs implement the same definition and
 * share its test vectors (testdata/instance-digest.json).
 */
export function instanceDigest(i: DigestContent): bigint {
  const parts: Buffer[] = [];
  const add = (s: string): void => {
    const bytes = Buffer.from(s, "utf8");
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(bytes.length);
    parts.push(len, bytes);
  };
  add(i.service);
  add(i.instanceId);
  add(i.host);
  add(String(i.port));
  add(i.version);
  add(i.zone);
  add(String(i.tags.length));
  for (const t of i.tags) add(t);
  const keys = Object.keys(i.metadata)
    .map((k) => Buffer.from(k, "utf8"))
    .sort(Buffer.compare)
    .map((b) => b.toString("utf8"));
  add(String(keys.length));
  for (const k of keys) {
    add(k);
    add(i.metadata[k]!);
  }
  add(String(i.weight));
  add(String(i.status));
  add(i.owner);
  add(String(i.operatorStatus));
  return createHash("sha256").update(Buffer.concat(parts)).digest().readBigUInt64BE(0);
}
