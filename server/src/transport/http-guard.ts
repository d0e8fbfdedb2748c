import { cors } from "@connectrpc/connect";
import net from "node:net";

/** HttpGuardOptions configure the checks every HTTP request passes before any protocol serves it. */
export interface HttpGuardOptions {
  /**
   * loopbackHostsOnly answers only requests whose Host (HTTP/1.1) or
   * :authority (HTTP/2) names a loopback address: localhost, 127.0.0.0/8 or
   * [::1], with any port. It is on for a loopback listener while
   * authentication is off: a web page that rebinds its own DNS name to
   * 127.0.0.1 still sends its own name as Host, and is refused.
   */
  readonly loopbackHostsOnly: boolean;
  /** corsOrigins are the browser origins allowed to call (MAXINE_CORS_ORIGINS); "*" allows any; empty: none. */
  readonly corsOrigins: readonly string[];
  /**
   * ownOrigin, when set, is the scheme ("http" or "https") of the server's
   * own pages (the dashboard, MAXINE_UI): a request whose Origin is that
   * scheme with the request's own Host is same-origin, from a page the
   * server served, and passes without CORS headers. Unset: the server
   * serves no page, so no origin is its own.
   */
  readonly ownOrigin?: "http" | "https";
}

/** Verdict is what a request gets from the guard: go on (with CORS headers to add, if any), a preflight answer, or a refusal. */
export type Verdict =
  | { readonly kind: "pass"; readonly headers: Record<string, string> | undefined }
  | { readonly kind: "preflight"; readonly headers: Record<string, string> }
  | { readonly kind: "refuse"; readonly message: string };

const PASS: Verdict = Object.freeze({ kind: "pass", headers: undefined });

/** MAX_AGE_S is how long a browser may cache a preflight answer. */
const MAX_AGE_S = "7200";
/** ALLOWED_HEADERS are the request headers a browser may send: those of Connect and gRPC-Web (connect-es's cors lists), and authorization for tokens. */
const ALLOWED_HEADERS = [...cors.allowedHeaders, "Authorization"].join(", ");
const EXPOSED_HEADERS = cors.exposedHeaders.join(", ");
const ALLOWED_METHODS = cors.allowedMethods.join(", ");

/**
 * HttpGuard holds the checks that come before any protocol, in one place
 * that both framings (Maxine's and connect-es's) and the plain endpoints
 * (/healthz, /metrics) pass through: the router calls it for every request
 * and HTTP/2 stream. A refused request is answered in its protocol's status
 * (PERMISSION_DENIED) or, for plain HTTP, 403.
 *
 * - Host: see HttpGuardOptions.loopbackHostsOnly (DNS rebinding).
 * - CORS: a request with an Origin header is a browser's. An allowed
 *   origin gets Access-Control-Allow-Origin (and Vary, and the exposed
 *   gRPC and Connect headers); its preflight (OPTIONS with
 *   Access-Control-Request-Method) is answered 204 with the methods and
 *   headers connect-es lists for Connect and gRPC-Web. Any other origin is
 *   refused, preflight or not, except the server's own (ownOrigin: the
 *   dashboard's calls, whose Origin names the Host they are sent to; the
 *   Host check above has already judged that Host).
 */
export class HttpGuard {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;
  /** lastHost is the last Host value that passed: clients send the same one on every request. */
  private lastHost: string | undefined;

  constructor(private readonly opts: HttpGuardOptions) {
    this.anyOrigin = opts.corsOrigins.includes("*");
    this.origins = new Set(opts.corsOrigins.map((o) => o.toLowerCase()));
  }

  /** check judges a request by its method, Host (or :authority), Origin and Access-Control-Request-Method headers. */
  check(method: string | undefined, host: string | undefined, origin: string | undefined, preflightMethod: string | undefined): Verdict {
    if (this.opts.loopbackHostsOnly && host !== undefined && host !== this.lastHost) {
      if (!isLoopbackAuthority(host)) {
        return {
          kind: "refuse",
          message: `Host ${JSON.stringify(host.slice(0, 256))} is not a loopback name: a loopback server without authentication answers only localhost, 127.0.0.1 or [::1] (DNS rebinding protection; see docs/security.md)`,
        };
      }
      this.lastHost = host;
    }
    if (origin === undefined) return PASS;
    if (this.opts.ownOrigin !== undefined && host !== undefined && sameOrigin(origin, this.opts.ownOrigin, host)) return PASS;
    if (!this.anyOrigin && !this.origins.has(origin.toLowerCase())) {
      return {
        kind: "refuse",
        message: `origin ${JSON.stringify(origin.slice(0, 256))} is not allowed: add it to MAXINE_CORS_ORIGINS to let browsers on it call`,
      };
    }
    const headers: Record<string, string> = { "access-control-allow-origin": origin, vary: "Origin" };
    if (method === "OPTIONS" && preflightMethod !== undefined) {
      headers["access-control-allow-methods"] = ALLOWED_METHODS;
      headers["access-control-allow-headers"] = ALLOWED_HEADERS;
      headers["access-control-max-age"] = MAX_AGE_S;
      return { kind: "preflight", headers };
    }
    headers["access-control-expose-headers"] = EXPOSED_HEADERS;
    return { kind: "pass", headers };
  }
}

/** sameOrigin reports whether a request's Origin is scheme://host with the Host (or :authority) it was sent to, as browsers write both. */
function sameOrigin(origin: string, scheme: string, host: string): boolean {
  const o = origin.toLowerCase();
  const h = host.trim().toLowerCase();
  return o.length === scheme.length + 3 + h.length && o.startsWith(scheme) && o.startsWith("://", scheme.length) && o.endsWith(h);
}

/**
 * isLoopbackAuthority reports whether a Host or :authority value (host,
 * optional port) names the loopback interface: localhost, an IPv4 address
 * in 127.0.0.0/8, or [::1].
 */
export function isLoopbackAuthority(authority: string): boolean {
  let host = authority.trim().toLowerCase();
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    if (end < 0) return false;
    const rest = host.slice(end + 1);
    if (rest !== "" && !/^:\d{1,5}$/.test(rest)) return false;
    host = host.slice(1, end);
    return isLoopbackAddress(host);
  }
  const colon = host.indexOf(":");
  if (colon >= 0) {
    if (!/^:\d{1,5}$/.test(host.slice(colon))) return false;
    host = host.slice(0, colon);
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  return host === "localhost" || isLoopbackAddress(host);
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** isLoopbackAddress reports whether an IP address (no brackets, no port) is a loopback one: 127.0.0.0/8, ::1 (any spelling), or ::ffff:127.x.x.x. */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase();
  if (net.isIPv4(a)) return LOOPBACK.check(a, "ipv4");
  if (!net.isIPv6(a)) return false;
  if (a.startsWith("::ffff:") && net.isIPv4(a.slice(7))) return LOOPBACK.check(a.slice(7), "ipv4");
  return LOOPBACK.check(a, "ipv6");
}
