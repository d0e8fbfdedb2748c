import { ConfigError, type Config } from "./config.js";
import { isLoopbackAddress } from "./transport/http-guard.js";

/**
 * isLoopbackHost reports whether MAXINE_HOST binds the loopback interface
 * only: localhost, an address in 127.0.0.0/8, or ::1 (with or without
 * brackets). 0.0.0.0, ::, a host name and any other address are not.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.trim().toLowerCase();
  if (h === "localhost") return true;
  return isLoopbackAddress(h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h);
}

/**
 * checkExposure refuses to start a server that anyone on the network could
 * use as its own: one listening on a non-loopback address with neither TLS
 * nor authentication configured, unless MAXINE_INSECURE=on says that is
 * meant. On loopback (the quick start) nothing is needed. It throws a
 * ConfigError that says why and how; startMaxine calls it before binding.
 *
 * authenticationConfigured comes from the authentication settings (tokens,
 * JWT keys or mTLS identities); until those exist startMaxine passes false.
 */
export function checkExposure(config: Pick<Config, "host" | "tlsCert" | "insecure">, authenticationConfigured: boolean): void {
  if (isLoopbackHost(config.host) || config.tlsCert !== "" || authenticationConfigured || config.insecure) return;
  throw new ConfigError(
    `MAXINE_HOST: ${JSON.stringify(config.host)} is not a loopback address, and neither TLS (MAXINE_TLS_CERT, MAXINE_TLS_KEY) nor authentication is configured: ` +
      `anyone who can reach the port could read and change the registry in cleartext. ` +
      `Configure TLS (docs/security.md), listen on 127.0.0.1, or set MAXINE_INSECURE=on (--insecure on) if this network is trusted.`,
  );
}
