import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT, type JWTPayload } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { JwtVerifier, type JwtOptions } from "../src/auth/jwt.js";
import { AuthError } from "../src/auth/principal.js";
import { ConfigError } from "../src/config.js";

type Pair = Awaited<ReturnType<typeof generateKeyPair>>;

const dir = mkdtempSync(join(tmpdir(), "maxine-jwt-"));
const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
const NOW_S = NOW / 1000;
let rsa: Pair;
let ec: Pair;
let ec2: Pair;
let stranger: Pair;
let rsaPem: string;
let ecPem: string;
let jwks: string;

async function sign(key: Pair, alg: string, claims: JWTPayload, header: { kid?: string } = {}): Promise<string> {
  return new SignJWT({ roles: ["reader"], ...claims })
    .setProtectedHeader({ alg, ...header })
    .sign(key.privateKey);
}

const base = { sub: "svc-a", iss: "https://issuer.test", aud: "maxine", iat: NOW_S, exp: NOW_S + 600 };

function opts(extra: Partial<JwtOptions> = {}): JwtOptions {
  return { issuer: "https://issuer.test", audience: "maxine", clockSkewSeconds: 30, principalClaim: "sub", rolesClaim: "roles", now: () => NOW, ...extra };
}

beforeAll(async () => {
  rsa = await generateKeyPair("RS256", { extractable: true });
  ec = await generateKeyPair("ES256", { extractable: true });
  ec2 = await generateKeyPair("ES256", { extractable: true });
  stranger = await generateKeyPair("ES256", { extractable: true });
  rsaPem = join(dir, "rsa.pem");
  ecPem = join(dir, "ec.pem");
  writeFileSync(rsaPem, await exportSPKI(rsa.publicKey));
  writeFileSync(ecPem, await exportSPKI(ec.publicKey));
  jwks = join(dir, "jwks.json");
  writeFileSync(
    jwks,
    JSON.stringify({
      keys: [
        { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", use: "sig" },
        { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256" },
        { ...(await exportJWK(ec2.publicKey)), kid: "ec-2" },
      ],
    }),
  );
});

async function reason(v: JwtVerifier, token: string): Promise<string> {
  try {
    await v.verify(token);
  } catch (err) {
    expect(err).toBeInstanceOf(AuthError);
    const message = (err as Error).message;
    expect(message).not.toContain(token);
    expect(message).not.toContain(token.split(".")[2]);
    return message;
  }
  throw new Error("verify accepted the token");
}

describe("JwtVerifier with PEM keys", () => {
  it.each([
    ["RS256", () => rsa],
    ["ES256", () => ec],
  ])("accepts a valid %s token and maps sub and roles", async (alg, key) => {
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [rsaPem, ecPem] }));
    const token = await sign(key(), alg, { ...base, roles: ["reader", "payments-writer"] });
    expect(v.looksLikeJwt(token)).toBe(true);
    expect(await v.verify(token)).toEqual({ name: "svc-a", roles: ["reader", "payments-writer"], source: "jwt" });
  });

  it("maps custom claims, a space-separated roles string and no roles", async () => {
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem], principalClaim: "client_id", rolesClaim: "scope" }));
    expect(await v.verify(await sign(ec, "ES256", { ...base, client_id: "app-1", scope: "reader  admin" }))).toEqual({ name: "app-1", roles: ["reader", "admin"], source: "jwt" });
    const none = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem], rolesClaim: "groups" }));
    expect((await none.verify(await sign(ec, "ES256", base))).roles).toEqual([]);
    expect(await reason(none, await sign(ec, "ES256", { ...base, groups: [1, 2] }))).toBe("JWT groups claim must be a list of strings");
  });

  it("tells expired (beyond the skew) from within the skew, and not-yet-valid", async () => {
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem] }));
    expect(await reason(v, await sign(ec, "ES256", { ...base, exp: NOW_S - 31 }))).toBe("JWT expired");
    expect((await v.verify(await sign(ec, "ES256", { ...base, exp: NOW_S - 29 }))).name).toBe("svc-a");
    expect(await reason(v, await sign(ec, "ES256", { ...base, nbf: NOW_S + 60 }))).toBe("JWT not yet valid");
    expect((await v.verify(await sign(ec, "ES256", { ...base, nbf: NOW_S + 20 }))).name).toBe("svc-a");
    const strict = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem], clockSkewSeconds: 0 }));
    expect(await reason(strict, await sign(ec, "ES256", { ...base, exp: NOW_S - 1 }))).toBe("JWT expired");
  });

  it("names a wrong issuer, a wrong audience, a missing claim, a bad signature and a malformed token", async () => {
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [rsaPem, ecPem] }));
    expect(await reason(v, await sign(ec, "ES256", { ...base, iss: "https://evil.test" }))).toBe("JWT has the wrong issuer");
    expect(await reason(v, await sign(ec, "ES256", { ...base, aud: "other" }))).toBe("JWT has the wrong audience");
    expect(await reason(v, await sign(ec, "ES256", { ...base, sub: undefined }))).toBe("JWT has no sub claim");
    expect(await reason(v, await sign(ec, "ES256", { ...base, exp: undefined }))).toBe("JWT has no exp claim");
    expect(await reason(v, await sign(stranger, "ES256", base))).toBe("JWT bad signature");
    const good = await sign(ec, "ES256", base);
    const [h, p] = good.split(".");
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...base, sub: "admin" })).toString("base64url")}.${good.split(".")[2]}`;
    expect(await reason(v, forged)).toBe("JWT bad signature");
    expect(await reason(v, `${h}.${p}`)).toBe("JWT malformed");
    expect(await reason(v, "not-a-jwt")).toBe("JWT malformed");
    expect(await reason(v, "e30.e30.e30")).toBe("JWT malformed");
    expect(v.looksLikeJwt("static-token-123")).toBe(false);
  });

  it("refuses alg none, HS256 and algorithms outside the allowed list", async () => {
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [rsaPem, ecPem], algorithms: ["RS256"] }));
    const none = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify(base)).toString("base64url")}.x`;
    expect(await reason(v, none)).toBe("JWT algorithm not allowed");
    const hs = await new SignJWT(base).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(await exportSPKI(rsa.publicKey)));
    expect(await reason(v, hs)).toBe("JWT algorithm not allowed");
    expect(await reason(v, await sign(ec, "ES256", base))).toBe("JWT algorithm not allowed");
    expect((await v.verify(await sign(rsa, "RS256", base))).name).toBe("svc-a");
    await expect(JwtVerifier.load(opts({ publicKeyFiles: [rsaPem], algorithms: ["HS256"] }))).rejects.toThrow(ConfigError);
  });
});

describe("JwtVerifier with a JWKS file", () => {
  it("picks the key by kid among several", async () => {
    const v = await JwtVerifier.load(opts({ jwksFile: jwks }));
    expect((await v.verify(await sign(rsa, "RS256", { ...base, sub: "r" }, { kid: "rsa-1" }))).name).toBe("r");
    expect((await v.verify(await sign(ec, "ES256", { ...base, sub: "e1" }, { kid: "ec-1" }))).name).toBe("e1");
    expect((await v.verify(await sign(ec2, "ES256", { ...base, sub: "e2" }, { kid: "ec-2" }))).name).toBe("e2");
    // signed by ec-2's key but claiming ec-1: the kid's key does not verify it
    expect(await reason(v, await sign(ec2, "ES256", base, { kid: "ec-1" }))).toBe("JWT bad signature");
    // no kid: every key of the algorithm is tried
    expect((await v.verify(await sign(ec2, "ES256", { ...base, sub: "nokid" }))).name).toBe("nokid");
    expect(await reason(v, await sign(stranger, "ES256", base, { kid: "unknown" }))).toBe("JWT bad signature (no key with its kid)");
  });

  it("rejects invalid key files with ConfigError naming the file", async () => {
    const bad = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const cases: [Partial<JwtOptions>, string][] = [
      [{ jwksFile: join(dir, "absent.json") }, `${join(dir, "absent.json")}: cannot read the JWKS file (ENOENT)`],
      [{ jwksFile: bad("notjson.json", "{") }, "a JWKS file must be JSON"],
      [{ jwksFile: bad("empty.json", '{"keys":[]}') }, 'needs a non-empty "keys" list'],
      [{ jwksFile: bad("oct.json", '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}') }, "keys[0]: symmetric (oct) keys are not accepted"],
      [{ jwksFile: bad("priv.json", JSON.stringify({ keys: [await exportJWK(ec.privateKey)] })) }, "keys[0]: holds a private key"],
      [{ jwksFile: bad("junk.json", '{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}') }, "keys[0]: not a valid public JWK"],
      [{ publicKeyFiles: [bad("priv.pem", await exportPKCS8(ec.privateKey))] }, "holds a private key"],
      [{ publicKeyFiles: [bad("junk.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")] }, "not a PEM public key or certificate"],
      [{}, "no verification key"],
    ];
    for (const [o, message] of cases) {
      const err = await JwtVerifier.load(opts(o)).catch((e: unknown) => e);
      expect(err, message).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(message);
    }
  });
});

describe("JwtVerifier cache", () => {
  it("answers a repeated token from the cache until its exp, then verifies again", async () => {
    let now = NOW;
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem], now: () => now }));
    const token = await sign(ec, "ES256", { ...base, exp: NOW_S + 60 });
    const first = await v.verify(token);
    expect(await v.verify(token)).toBe(first); // the same object: no second verification
    now = NOW + 59_999;
    expect(await v.verify(token)).toBe(first);
    now = NOW + 60_000; // at exp: the entry is gone; within the skew it verifies afresh (a new object)
    const again = await v.verify(token);
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
    now = NOW + 91_000; // beyond the skew
    expect(await reason(v, token)).toBe("JWT expired");
  });

  it("is bounded: the oldest entry is evicted", async () => {
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem], cacheSize: 2 }));
    const [t1, t2, t3] = await Promise.all(["a", "b", "c"].map((sub) => sign(ec, "ES256", { ...base, sub })));
    const p1 = await v.verify(t1!);
    const p2 = await v.verify(t2!);
    await v.verify(t3!);
    expect(await v.verify(t2!)).toBe(p2);
    expect(await v.verify(t1!)).not.toBe(p1);
    const off = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem], cacheSize: 0 }));
    expect(await off.verify(t1!)).not.toBe(await off.verify(t1!));
  });

  it("never caches a failure", async () => {
    let now = NOW;
    const v = await JwtVerifier.load(opts({ publicKeyFiles: [ecPem], now: () => now }));
    const early = await sign(ec, "ES256", { ...base, nbf: NOW_S + 120 });
    expect(await reason(v, early)).toBe("JWT not yet valid");
    now = NOW + 120_000;
    expect((await v.verify(early)).name).toBe("svc-a");
  });
});
