import type { Interceptor } from "@connectrpc/connect";

/**
 * TokenSource is a bearer token: a fixed string, or a function called
 * before every call (and every stream that opens or reopens) that returns
 * the current token, so a client can refresh short-lived tokens without
 * being rebuilt.
 */
export type TokenSource = string | (() => string | Promise<string>);

/**
 * TlsOptions are the client's TLS settings for an https:// server: the CA
 * that signed the server's certificate (instead of the system roots) and,
 * for mTLS, the client's own certificate and key. PEM text or bytes.
 */
export interface TlsOptions {
  /** ca is the PEM CA certificate(s) the server's certificate must chain to; default: Node's root CAs. */
  readonly ca?: string | Uint8Array;
  /** cert is the client certificate chain (PEM), for servers with MAXINE_TLS_CLIENT_AUTH. */
  readonly cert?: string | Uint8Array;
  /** key is the client certificate's private key (PEM). */
  readonly key?: string | Uint8Array;
  /** servername is the name the server's certificate is checked against, when it differs from baseUrl's host. */
  readonly servername?: string;
}

/** checkToken refuses a token that cannot go in a header: empty, or with control characters. */
function checkToken(token: unknown, from: string): string {
  if (typeof token !== "string" || token === "" || /[\x00-\x1f\x7f]/.test(token)) {
    throw new TypeError(`${from}: must be a non-empty string without control characters (the token itself is not shown)`);
  }
  return token;
}

/**
 * bearerInterceptor sends `authorization: Bearer <token>` with every call,
 * asking a function source for the token each time. A token that cannot be
 * sent fails the call with a TypeError; the token never appears in the
 * message.
 */
export function bearerInterceptor(token: TokenSource): Interceptor {
  if (typeof token === "string") {
    const header = `Bearer ${checkToken(token, "token")}`;
    return (next) => (req) => {
      req.header.set("authorization", header);
      return next(req);
    };
  }
  if (typeof token !== "function") throw new TypeError("token: must be a string or a function returning one");
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${checkToken(await token(), "token()")}`);
    return next(req);
  };
}

/** tlsNodeOptions turns TlsOptions into the options of Node's https and http2 clients. */
export function tlsNodeOptions(tls: TlsOptions): { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer; servername?: string } {
  const bytes = (v: string | Uint8Array): string | Buffer => (typeof v === "string" ? v : Buffer.from(v));
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw new TypeError("tls: cert and key go together (mTLS needs both)");
  return {
    ...(tls.ca !== undefined ? { ca: bytes(tls.ca) } : {}),
    ...(tls.cert !== undefined ? { cert: bytes(tls.cert) } : {}),
    ...(tls.key !== undefined ? { key: bytes(tls.key) } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
  };
}
