import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { InstanceSchema, OperatorStatus, ServingStatus, type Instance } from "@maxine/sdk";

/**
 * Output is where a command writes, and how: a table for people or JSON for
 * programs; colors only on a terminal and never with NO_COLOR set
 * (https://no-color.org).
 */
export class Output {
  readonly format: "table" | "json";
  readonly tty: boolean;
  readonly color: boolean;

  constructor(
    format: "table" | "json" | undefined,
    readonly stream: NodeJS.WriteStream = process.stdout,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.tty = stream.isTTY === true;
    this.format = format ?? "table";
    this.color = this.tty && (env.NO_COLOR ?? "") === "";
  }

  /** line writes one line. */
  line(text = ""): void {
    this.stream.write(`${text}\n`);
  }

  /** json writes one value as one line of JSON. */
  json(value: unknown): void {
    this.line(JSON.stringify(value));
  }

  /** table writes rows under a header, each column as wide as its widest cell. */
  table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): void {
    for (const l of tableLines(header, rows, this.color)) this.line(l);
  }

  /** status is a serving status's name, colored on a terminal. */
  status(s: ServingStatus): string {
    return paint(statusName(s), this.color ? STATUS_COLORS[s] : undefined);
  }
}

const STATUS_COLORS: Partial<Record<ServingStatus, number>> = {
  [ServingStatus.SERVING]: 32, // green
  [ServingStatus.DRAINING]: 33, // yellow
  [ServingStatus.NOT_SERVING]: 31, // red
};

/** paint wraps text in an SGR color (undefined: plain). */
export function paint(text: string, sgr: number | undefined): string {
  return sgr === undefined ? text : `\x1b[${sgr}m${text}\x1b[0m`;
}

/** visibleLength is a cell's width on screen, color codes left out. */
function visibleLength(s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

/** tableLines lays out a table: columns padded to their widest cell, two spaces apart; the header bold on a terminal. */
export function tableLines(header: readonly string[], rows: ReadonlyArray<readonly string[]>, color: boolean): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ""))));
  const fmt = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(widths[i]! - visibleLength(c))))
      .join("  ")
      .trimEnd();
  return [paint(fmt(header), color ? 1 : undefined), ...rows.map(fmt)];
}

/** statusName is SERVING, NOT_SERVING or DRAINING (UNSPECIFIED for an unset status). */
export function statusName(s: ServingStatus): string {
  return ServingStatus[s] ?? String(s);
}

/** address is host:port, bracketing IPv6 hosts. */
export function address(i: Instance): string {
  return i.host.includes(":") ? `[${i.host}]:${i.port}` : `${i.host}:${i.port}`;
}

/** age is how long ago a time was, shortly: 42s, 5m, 3h, 2d. */
export function age(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** INSTANCE_HEADER is the columns of instanceRow. */
export const INSTANCE_HEADER = ["ID", "ADDRESS", "ZONE", "VERSION", "TAGS", "WEIGHT", "STATUS", "AGE"] as const;

/** instanceRow is one instance as a table row (INSTANCE_HEADER). */
export function instanceRow(out: Output, i: Instance, now = Date.now()): string[] {
  return [
    i.instanceId,
    address(i),
    i.zone || "-",
    i.version || "-",
    i.tags.length > 0 ? i.tags.join(",") : "-",
    String(i.weight),
    // an operator's override (maxine drain) is marked: the status then is not what the instance reports
    i.operatorStatus !== OperatorStatus.UNSPECIFIED ? `${out.status(i.status)} (operator)` : out.status(i.status),
    i.registeredAt !== undefined ? age(timestampMs(i.registeredAt), now) : "-",
  ];
}

/** LIVE_HEADER is the columns of liveRow: instanceRow's and the instance's live lease state. */
export const LIVE_HEADER = [...INSTANCE_HEADER, "LOAD", "LEASE LEFT"] as const;

/**
 * liveRow is instanceRow with the instance's live lease state, as Discover
 * include_all reports it: the load its beats last reported and the time
 * left before it goes unless renewed, on this machine's clock. "-" where
 * the server did not say (no load reported; in Redis mode, an instance
 * whose heartbeat stream another replica holds).
 */
export function liveRow(out: Output, i: Instance, now = Date.now()): string[] {
  return [
    ...instanceRow(out, i, now),
    i.reportedLoad !== undefined ? loadText(i.reportedLoad) : "-",
    i.leaseExpiresAt !== undefined ? leaseLeft(timestampMs(i.leaseExpiresAt), now) : "-",
  ];
}

/** loadText is a reported load, to three decimals at most (the JSON output keeps the exact value). */
export function loadText(load: number): string {
  return String(Math.round(load * 1000) / 1000);
}

/** leaseLeft is the time until an instant, shortly: 7.2s below a minute, then 4m05s, then 2h03m; 0.0s once passed. */
export function leaseLeft(ms: number, now = Date.now()): string {
  const left = Math.max(0, ms - now);
  if (left < 59_950) return `${(left / 1000).toFixed(1)}s`;
  const s = Math.round(left / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** instanceJson is an instance in the protobuf JSON mapping (what grpcurl and Connect JSON show). */
export function instanceJson(i: Instance): unknown {
  return toJson(InstanceSchema, i);
}

/** messageJson is any message in the protobuf JSON mapping. */
export function messageJson<D extends DescMessage>(desc: D, m: MessageShape<D>): unknown {
  return toJson(desc, m);
}
