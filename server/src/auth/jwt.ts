import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { decodeProtectedHeader, jwtVerify, type JWTPayload } from "jose";
import { ConfigError } from "../config.js";
import { AuthError, type AuthPrincipal } from "./principal.js";

/** JwtOptions say which local keys sign accepted JWTs and how claims map to a principal. */
export interface JwtOptions {
  /** jwksFile is a JSON Web Key Set file ({"keys": [...]}) of public keys; keys with a kid are picked by the token's kid. */
  jwksFile?: string;
  /** publicKeyFiles are PEM files, one public key (SPKI) or certificate each. */
  publicKeyFiles?: string[];
  /** issuer, when set, must equal the iss claim. */
  issuer?: string;
  /** audience, when set, must be (one of) the aud claim. */
  audience?: string;
  /** clockSkewSeconds is the tolerance applied to exp and nbf. */
  clockSkewSeconds: number;
  /** principalClaim names the claim holding the principal name (usually sub). */
  principalClaim: string;
  /** rolesClaim names the claim holding roles: a list of strings or one space-separated string; absent means no roles. */
  rolesClaim: string;
  /** algorithms restricts the accepted algorithms (default: every asymmetric one the keys support; never none or HS*). */
  algorithms?: string[];
  /** cacheSize bounds the verified-token cache (default 10,000 entries, oldest evicted; 0: no cache). */
  cacheSize?: number;
  /** now is the clock in epoch milliseconds (tests); Date.now by default. */
  now?: () => number;
}

const RSA = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const EC: Record<string, string> = { prime256v1: "ES256", secp384r1: "ES384", secp521r1: "ES512" };
const ALL_ALGORITHMS = new Set([...RSA, ...Object.values(EC), "EdDSA", "Ed25519"]);
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

interface VerifyKey {
  readonly kid: string | undefined;
  readonly key: KeyObject;
  readonly algorithms: ReadonlySet<string>;
}

interface CacheEntry {
  readonly principal: AuthPrincipal;
  readonly expMs: number;
}

/** algorithmsFor lists the JWS algorithms a public key can verify. */
function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return RSA;
    case "rsa-pss":
      return RSA.filter((a) => a.startsWith("PS"));
    case "ec": {
      const alg = EC[key.asymmetricKeyDetails?.namedCurve ?? ""];
      return alg === undefined ? [] : [alg];
    }
    case "ed25519":
      return ["EdDSA", "Ed25519"];
    default:
      return [];
  }
}

function readKeyFile(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${path}: cannot read the ${what} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function makeKey(key: KeyObject, kid: string | undefined, jwkAlg: unknown, where: string, allowed: ReadonlySet<string>): VerifyKey {
  let algs = algorithmsFor(key);
  if (algs.length === 0) throw new ConfigError(`${where}: unsupported key type ${key.asymmetricKeyType ?? "?"} (RSA, EC P-256/P-384/P-521 or Ed25519)`);
  if (typeof jwkAlg === "string") {
    if (!algs.includes(jwkAlg)) throw new ConfigError(`${where}: alg ${JSON.stringify(jwkAlg)} does not fit a ${key.asymmetricKeyType} key`);
    algs = [jwkAlg];
  }
  return { kid, key, algorithms: new Set(algs.filter((a) => allowed.has(a))) };
}

function loadJwks(path: string, allowed: ReadonlySet<string>): VerifyKey[] {
  let doc: unknown;
  try {
    doc = JSON.parse(readKeyFile(path, "JWKS file"));
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`${path}: a JWKS file must be JSON ({"keys": [...]})`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new ConfigError(`${path}: a JWKS file needs a non-empty "keys" list`);
  return keys.map((jwk: unknown, i) => {
    const where = `${path}: keys[${i}]`;
    if (typeof jwk !== "object" || jwk === null) throw new ConfigError(`${where}: must be a JSON object (a JWK)`);
    const j = jwk as Record<string, unknown>;
    if (j.kty === "oct") throw new ConfigError(`${where}: symmetric (oct) keys are not accepted; give public keys only`);
    if ("d" in j) throw new ConfigError(`${where}: holds a private key (field d); give public keys only`);
    if (j.use !== undefined && j.use !== "sig") throw new ConfigError(`${where}: use must be sig`);
    if (j.kid !== undefined && typeof j.kid !== "string") throw new ConfigError(`${where}: kid must be a string`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: j as never, format: "jwk" });
    } catch {
      throw new ConfigError(`${where}: not a valid public JWK`);
    }
    return makeKey(key, j.kid as string | undefined, j.alg, where, allowed);
  });
}

function loadPem(path: string, allowed: ReadonlySet<string>): VerifyKey {
  const text = readKeyFile(path, "JWT public key file");
  if (/PRIVATE KEY/.test(text)) throw new ConfigError(`${path}: holds a private key; give the public key (openssl pkey -pubout) or a certificate`);
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch {
    throw new ConfigError(`${path}: not a PEM public key or certificate`);
  }
  return makeKey(key, undefined, undefined, path, allowed);
}

/** authErrorOf maps a jose error to an AuthError whose message says what is wrong. */
function authErrorOf(err: unknown): AuthError {
  const e = err as { code?: string; claim?: string; reason?: string };
  switch (e.code) {
    case "ERR_JWT_EXPIRED":
      return new AuthError("JWT expired");
    case "ERR_JWT_CLAIM_VALIDATION_FAILED":
      if (e.reason === "missing") return new AuthError(`JWT has no ${e.claim} claim`);
      if (e.claim === "nbf") return new AuthError("JWT not yet valid");
      if (e.claim === "iss") return new AuthError("JWT has the wrong issuer");
      if (e.claim === "aud") return new AuthError("JWT has the wrong audience");
      return new AuthError(`JWT ${e.claim ?? "claim"} claim is invalid`);
    case "ERR_JWS_SIGNATURE_VERIFICATION_FAILED":
      return new AuthError("JWT bad signature");
    case "ERR_JOSE_ALG_NOT_ALLOWED":
      return new AuthError("JWT algorithm not allowed");
    default:
      return new AuthError("JWT malformed");
  }
}

/**
 * JwtVerifier checks JWTs against local keys only (a JWKS file and PEM files;
 * it never fetches anything). Successful verifications are cached by token
 * until the token's exp, so a hot unary path pays one Map lookup, not a
 * signature check.
 */
export class JwtVerifier {
  readonly #keys: readonly VerifyKey[];
  readonly #opts: JwtOptions;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #cacheSize: number;
  readonly #now: () => number;

  private constructor(keys: readonly VerifyKey[], opts: JwtOptions) {
    this.#keys = keys;
    this.#opts = opts;
    this.#cacheSize = opts.cacheSize ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** load reads the key files; unreadable or invalid ones throw ConfigError naming the file. */
  static async load(opts: JwtOptions): Promise<JwtVerifier> {
    for (const a of opts.algorithms ?? []) {
      if (!ALL_ALGORITHMS.has(a)) throw new ConfigError(`JWT algorithms: ${JSON.stringify(a)} is not accepted (one of ${[...ALL_ALGORITHMS].join(", ")})`);
    }
    const allowed = new Set(opts.algorithms ?? ALL_ALGORITHMS);
    const keys: VerifyKey[] = [];
    if (opts.jwksFile !== undefined && opts.jwksFile !== "") keys.push(...loadJwks(opts.jwksFile, allowed));
    for (const f of opts.publicKeyFiles ?? []) keys.push(loadPem(f, allowed));
    if (keys.length === 0) throw new ConfigError("JWT: no verification key (give a JWKS file or PEM public key files)");
    if (keys.every((k) => k.algorithms.size === 0)) throw new ConfigError("JWT: no key supports the allowed algorithms");
    return new JwtVerifier(keys, opts);
  }

  /** looksLikeJwt reports whether token has the JWS compact shape: three base64url parts. */
  looksLikeJwt(token: string): boolean {
    return JWT_SHAPE.test(token);
  }

  /** verify returns the token's principal or throws AuthError saying what is wrong (never quoting the token). */
  async verify(token: string): Promise<AuthPrincipal> {
    const now = this.#now();
    const hit = this.#cache.get(token);
    if (hit !== undefined) {
      if (now < hit.expMs) return hit.principal;
      this.#cache.delete(token);
    }
    if (!this.looksLikeJwt(token)) throw new AuthError("JWT malformed");
    let alg: unknown;
    let kid: unknown;
    try {
      ({ alg, kid } = decodeProtectedHeader(token));
    } catch {
      throw new AuthError("JWT malformed");
    }
    if (typeof alg !== "string") throw new AuthError("JWT malformed");
    const fitting = this.#keys.filter((k) => k.algorithms.has(alg));
    if (fitting.length === 0) throw new AuthError("JWT algorithm not allowed");
    const byKid = fitting.filter((k) => k.kid !== undefined && k.kid === kid);
    const candidates = byKid.length > 0 ? byKid : fitting.filter((k) => k.kid === undefined || kid === undefined);
    if (candidates.length === 0) throw new AuthError("JWT bad signature (no key with its kid)");
    let payload: JWTPayload | undefined;
    let lastError: unknown;
    for (const k of candidates) {
      try {
        ({ payload } = await jwtVerify(token, k.key, {
          algorithms: [alg],
          issuer: this.#opts.issuer,
          audience: this.#opts.audience,
          clockTolerance: this.#opts.clockSkewSeconds,
          requiredClaims: ["exp"],
          currentDate: new Date(now),
        }));
        break;
      } catch (err) {
        lastError = err;
        if ((err as { code?: string }).code !== "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") break;
      }
    }
    if (payload === undefined) throw authErrorOf(lastError);
    const principal = this.#principalOf(payload);
    const expMs = (payload.exp as number) * 1000;
    if (now < expMs && this.#cacheSize > 0) {
      if (this.#cache.size >= this.#cacheSize) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(token, { principal, expMs });
    }
    return principal;
  }

  #principalOf(payload: JWTPayload): AuthPrincipal {
    const { principalClaim, rolesClaim } = this.#opts;
    const name = payload[principalClaim];
    if (typeof name !== "string" || name === "") throw new AuthError(`JWT has no ${principalClaim} claim`);
    const raw = payload[rolesClaim];
    let roles: string[];
    if (raw === undefined) roles = [];
    else if (typeof raw === "string") roles = raw.split(/\s+/).filter((r) => r !== "");
    else if (Array.isArray(raw) && raw.every((r) => typeof r === "string")) roles = raw as string[];
    else throw new AuthError(`JWT ${rolesClaim} claim must be a list of strings`);
    return Object.freeze({ name, roles: Object.freeze([...new Set(roles)]), source: "jwt" as const });
  }
}
