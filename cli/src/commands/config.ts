import { readFileSync } from "node:fs";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { diffLines, type ConfigEntry } from "@maxine/sdk";
import { UNARY_TIMEOUT_MS, type Connection, type GlobalOptions } from "../connection.js";
import { InvalidArgumentError } from "commander";
import { CliError, ExitCode, usage } from "../errors.js";
import type { Output } from "../output.js";

// `maxine config ...`: read, write and follow service configuration
// (maxine.config.v1.ConfigService). Values are bytes: printed as they are
// (text) in a table, base64 in JSON output.

const opts = { timeoutMs: UNARY_TIMEOUT_MS };

/** entryJson is an entry as the JSON output prints it. */
function entryJson(e: ConfigEntry, withValue = true): Record<string, unknown> {
  return {
    namespace: e.namespace,
    service: e.service,
    key: e.key,
    version: String(e.version),
    revision: String(e.revision),
    contentType: e.contentType,
    updatedAt: e.updatedAt === undefined ? undefined : new Date(timestampMs(e.updatedAt)).toISOString(),
    principal: e.principal,
    ...(e.deleted ? { deleted: true } : {}),
    ...(withValue && !e.deleted ? { value: Buffer.from(e.value).toString("base64") } : {}),
  };
}

const when = (e: ConfigEntry) => (e.updatedAt === undefined ? "" : new Date(timestampMs(e.updatedAt)).toISOString().replace(/\.\d{3}Z$/, "Z"));
const text = (v: Uint8Array) => Buffer.from(v).toString("utf8");

/** versionArg reads a version number (1 or more). */
export function versionArg(v: string): bigint {
  if (!/^\d+$/.test(v) || BigInt(v) < 1n) throw new InvalidArgumentError(`a version is an integer >= 1, got ${JSON.stringify(v)}`);
  return BigInt(v);
}

/** expectArg reads --expect-version: 0 (must not exist) or a version. */
export function expectArg(v: string): bigint {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`an integer >= 0 (0: the key must not exist), got ${JSON.stringify(v)}`);
  return BigInt(v);
}

/** configGet prints a key's value (or a kept version): the value itself in a table, the entry in JSON. */
export async function configGet(conn: Connection, g: GlobalOptions, out: Output, service: string, key: string, o: { version?: bigint }): Promise<number> {
  const { entry } = await conn.once(() => conn.config.get({ namespace: g.namespace, service, key, version: o.version ?? 0n }, opts));
  if (out.format === "json") out.json(entryJson(entry!));
  else process.stdout.write(text(entry!.value).endsWith("\n") || entry!.value.length === 0 ? text(entry!.value) : `${text(entry!.value)}\n`);
  return ExitCode.OK;
}

/** configPut writes a value from the argument, --file, or standard input (-), with --expect-version for compare-and-set. */
export async function configPut(
  conn: Connection,
  g: GlobalOptions,
  out: Output,
  service: string,
  key: string,
  value: string | undefined,
  o: { file?: string; contentType?: string; expectVersion?: bigint },
): Promise<number> {
  if ((value === undefined) === (o.file === undefined)) throw usage("give the value as an argument or with --file (--file - reads standard input), not both");
  const bytes = o.file !== undefined ? new Uint8Array(readFileSync(o.file === "-" ? 0 : o.file)) : new TextEncoder().encode(value);
  const { entry } = await conn.config.put({ namespace: g.namespace, service, key, value: bytes, contentType: o.contentType ?? "", expectedVersion: o.expectVersion }, opts);
  if (out.format === "json") out.json(entryJson(entry!, false));
  else out.line(`${service}/${key}: version ${entry!.version} (revision ${entry!.revision})`);
  return ExitCode.OK;
}

/** configDelete deletes a key, with --expect-version for compare-and-set. */
export async function configDelete(conn: Connection, g: GlobalOptions, out: Output, service: string, key: string, o: { expectVersion?: bigint }): Promise<number> {
  const { entry } = await conn.config.delete({ namespace: g.namespace, service, key, expectedVersion: o.expectVersion }, opts);
  if (out.format === "json") out.json(entryJson(entry!, false));
  else out.line(`${service}/${key}: deleted (version ${entry!.version}, revision ${entry!.revision})`);
  return ExitCode.OK;
}

/** configList lists a service's keys with their latest versions. */
export async function configList(conn: Connection, g: GlobalOptions, out: Output, service: string): Promise<number> {
  const res = await conn.once(() => conn.config.list({ namespace: g.namespace, service }, opts));
  if (out.format === "json") {
    out.json({ service, revision: String(res.revision), keys: res.entries.map((e) => entryJson(e, false)) });
    return ExitCode.OK;
  }
  if (res.entries.length === 0) {
    out.line(`no configuration in ${service}`);
    return ExitCode.OK;
  }
  out.table(
    ["KEY", "VERSION", "REVISION", "UPDATED", "BY", "CONTENT-TYPE"],
    res.entries.map((e) => [e.key, String(e.version), String(e.revision), when(e), e.principal, e.contentType]),
  );
  return ExitCode.OK;
}

/** configHistory lists a key's kept versions, newest first. */
export async function configHistory(conn: Connection, g: GlobalOptions, out: Output, service: string, key: string, o: { limit?: number }): Promise<number> {
  const res = await conn.once(() => conn.config.history({ namespace: g.namespace, service, key, limit: o.limit ?? 0 }, opts));
  if (out.format === "json") {
    out.json({ service, key, versions: res.entries.map((e) => entryJson(e)) });
    return ExitCode.OK;
  }
  out.table(
    ["VERSION", "REVISION", "UPDATED", "BY", "SIZE"],
    res.entries.map((e) => [String(e.version), String(e.revision), when(e), e.principal, e.deleted ? "deleted" : `${e.value.length} B`]),
  );
  return ExitCode.OK;
}

/** configRollback writes an older version's content as a new version. */
export async function configRollback(conn: Connection, g: GlobalOptions, out: Output, service: string, key: string, to: bigint, o: { expectVersion?: bigint }): Promise<number> {
  const { entry } = await conn.config.rollback({ namespace: g.namespace, service, key, toVersion: to, expectedVersion: o.expectVersion }, opts);
  if (out.format === "json") out.json(entryJson(entry!, false));
  else out.line(`${service}/${key}: version ${entry!.version} holds version ${to}'s content (revision ${entry!.revision})`);
  return ExitCode.OK;
}

/** configDiff prints a version (default: the latest) against the one before it, as a unified line diff. */
export async function configDiff(conn: Connection, g: GlobalOptions, out: Output, service: string, key: string, o: { version?: bigint }): Promise<number> {
  const res = await conn.once(() => conn.config.history({ namespace: g.namespace, service, key, limit: 0 }, opts));
  const at = o.version === undefined ? 0 : res.entries.findIndex((e) => e.version === o.version);
  if (at < 0) throw new CliError(`version ${o.version} of ${service}/${key} is not kept`, ExitCode.NOT_FOUND);
  const after = res.entries[at]!;
  const before = res.entries[at + 1];
  const a = before === undefined || before.deleted ? [] : lines(text(before.value));
  const b = after.deleted ? [] : lines(text(after.value));
  const ops = diffLines(a, b);
  if (out.format === "json") {
    out.json({ service, key, from: before === undefined ? null : String(before.version), to: String(after.version), lines: ops.map(([op, line]) => `${op}${line}`) });
    return ExitCode.OK;
  }
  out.line(`--- ${service}/${key} ${before === undefined ? "(none kept)" : `version ${before.version}${before.deleted ? " (deleted)" : ""}`}`);
  out.line(`+++ ${service}/${key} version ${after.version}${after.deleted ? " (deleted)" : ""}`);
  for (const [op, line] of ops) out.line(`${op}${line}`);
  return ExitCode.OK;
}

/** configWatch follows a service's configuration (or one key): one line per change, one JSON object per change with -o json. */
export async function configWatch(conn: Connection, g: GlobalOptions, out: Output, service: string, key: string | undefined): Promise<number> {
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    for await (const m of conn.config.watch({ namespace: g.namespace, services: [service] }, { signal: abort.signal })) {
      const entries = m.message.case === "snapshot" ? m.message.value.entries : m.message.case === "event" && m.message.value.entry !== undefined ? [m.message.value.entry] : [];
      for (const e of entries) {
        if (key !== undefined && e.key !== key) continue;
        if (out.format === "json") out.json({ kind: m.message.case, ...entryJson(e) });
        else out.line(`${m.message.case === "snapshot" ? "current" : e.deleted ? "deleted" : "changed"} ${e.key} version ${e.version}${e.deleted ? "" : `: ${text(e.value).replace(/\n/g, "\\n")}`}`);
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) throw err;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
  return ExitCode.OK;
}

function lines(s: string): string[] {
  const out = s.split("\n");
  if (out.at(-1) === "") out.pop();
  return out;
}
