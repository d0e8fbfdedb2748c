import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { invalid } from "../domain/errors.js";
import type { CheckTargets } from "../domain/health.js";

/** DEFAULT_CHECK_ALLOW is MAXINE_CHECK_ALLOW's default: loopback and the private ranges (RFC 1918, IPv6 unique local). */
export const DEFAULT_CHECK_ALLOW = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7";

/** NEVER are the networks no check reaches, whatever the allow-list says: link-local (cloud metadata services live there) and unspecified addresses. */
const NEVER: readonly (readonly [string, number, "ipv4" | "ipv6", string])[] = [
  ["169.254.0.0", 16, "ipv4", "link-local 169.254.0.0/16"],
  ["fe80::", 10, "ipv6", "link-local fe80::/10"],
  ["0.0.0.0", 8, "ipv4", "unspecified 0.0.0.0/8"],
  ["::", 128, "ipv6", "unspecified ::"],
];

/** MAX_VETTED bounds TargetPolicy's memory of allowed literal targets. */
const MAX_VETTED = 100_000;

/** Cidr is one parsed network of an allow-list. */
interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: "ipv4" | "ipv6";
}

/**
 * parseAllowList parses MAXINE_CHECK_ALLOW: networks in CIDR notation,
 * separated by commas. It throws an Error naming the entry and the rule
 * (config.ts turns it into a ConfigError).
 */
export function parseAllowList(raw: string): Cidr[] {
  const out: Cidr[] = [];
  for (const entry of raw.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(entry);
    const version = m === null ? 0 : isIP(m[1]!);
    const prefix = m === null ? NaN : Number(m[2]);
    if (m === null || version === 0 || !(prefix >= 0 && prefix <= (version === 4 ? 32 : 128))) {
      throw new Error(`must be networks in CIDR notation separated by commas (10.0.0.0/8,::1/128), got ${JSON.stringify(entry)}`);
    }
    out.push({ address: m[1]!, prefix, family: version === 4 ? "ipv4" : "ipv6" });
  }
  return out;
}

/** Listening is the registry's own listening address: probes never go there. */
export interface Listening {
  readonly host: string;
  readonly port: () => number;
}

/** TargetOptions configure a TargetPolicy. */
export interface TargetOptions {
  /** allow is MAXINE_CHECK_ALLOW as given (for error messages) */
  readonly allow: string;
  readonly listening: Listening;
  /** resolve returns a host's addresses (default: dns.lookup, all of them). */
  readonly resolve?: (host: string) => Promise<string[]>;
}

/**
 * TargetPolicy decides where probes may go: a probe goes only to its
 * instance's own host, resolved here, and every address that host has
 * must lie in an allowed network (MAXINE_CHECK_ALLOW), outside link-local
 * and unspecified ranges, and must not be the registry's own listening
 * address. Register vets a check with it (a refusal names the rule and
 * the setting), and each probe resolves again and connects to the
 * address vetted then, so a DNS name that later points elsewhere cannot
 * steer a probe (docs/security.md).
 */
export class TargetPolicy implements CheckTargets {
  private readonly allowed = new BlockList();
  private readonly never: readonly (readonly [BlockList, string])[];
  private readonly allowText: string;
  private readonly listening: Listening;
  private readonly resolver: (host: string) => Promise<string[]>;
  /** vetted holds the IP literal targets (address|port) already allowed, so a probe does not check them again. */
  private readonly vetted = new Set<string>();

  constructor(opts: TargetOptions) {
    for (const c of parseAllowList(opts.allow)) this.allowed.addSubnet(c.address, c.prefix, c.family);
    this.never = NEVER.map(([address, prefix, family, label]) => {
      const list = new BlockList();
      list.addSubnet(address, prefix, family);
      return [list, label] as const;
    });
    this.allowText = opts.allow;
    this.listening = opts.listening;
    this.resolver = opts.resolve ?? (async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address));
  }

  /** vet implements CheckTargets: it rejects a host any of whose addresses a probe must not reach. */
  async vet(host: string, port: number): Promise<void> {
    await this.address(host, port);
  }

  /**
   * address resolves host and returns the address a probe to port
   * connects to (the first), after checking all of them; it throws
   * INVALID_ARGUMENT naming the rule and the setting otherwise.
   */
  async address(host: string, port: number): Promise<string> {
    const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
    if (isIP(bare) !== 0) {
      // the same literal is vetted on every probe: the answer cannot change (the port set is fixed once listening)
      const id = `${bare}|${port}`;
      if (this.vetted.has(id)) return bare;
      this.check(bare, port, host);
      if (this.vetted.size >= MAX_VETTED) this.vetted.clear();
      this.vetted.add(id);
      return bare;
    }
    let addresses: string[];
    try {
      addresses = await this.resolver(bare);
    } catch (err) {
      throw invalid("instance.host", `must resolve for its health check to be probed, got ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} for ${JSON.stringify(host)}`);
    }
    if (addresses.length === 0) throw invalid("instance.host", `must resolve for its health check to be probed, got no address for ${JSON.stringify(host)}`);
    for (const a of addresses) this.check(a, port, host);
    return addresses[0]!;
  }

  private check(raw: string, port: number, host: string): void {
    const address = unmapped(raw);
    const family = isIP(address) === 4 ? "ipv4" : "ipv6";
    const target = `${family === "ipv6" ? `[${address}]` : address}:${port}${address === host ? "" : ` (${host})`}`;
    const never = this.never.find(([list]) => list.check(address, family));
    if (never !== undefined) {
      throw invalid("instance.health_check", `probe target ${target} is ${never[1]}, which health checks never reach`);
    }
    if (this.isOwnAddress(address, port)) {
      throw invalid("instance.health_check", `probe target ${target} is this registry's own listening address, which health checks never reach`);
    }
    if (!this.allowed.check(address, family)) {
      throw invalid("instance.health_check", `probe target ${target} is outside the networks health checks may reach (MAXINE_CHECK_ALLOW=${this.allowText})`);
    }
  }

  /** isOwnAddress reports whether address:port is where this registry listens (any local address when it listens on all). */
  private isOwnAddress(address: string, port: number): boolean {
    if (port !== this.listening.port()) return false;
    const host = unmapped(this.listening.host.replace(/^\[|\]$/g, ""));
    if (host === address) return true;
    if (host === "localhost" && (address === "127.0.0.1" || address === "::1")) return true;
    if (host !== "0.0.0.0" && host !== "::" && host !== "") return false;
    if (address.startsWith("127.") || address === "::1") return true;
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) if (unmapped(i.address) === address) return true;
    }
    return false;
  }
}

/** unmapped is an IPv4-mapped IPv6 address (::ffff:10.0.0.1) as IPv4, so one allow-list entry covers both forms. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m === null ? address : m[1]!;
}
