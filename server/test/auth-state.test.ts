import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportSPKI, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { AuthState, authOptionsOf } from "../src/auth/auth-state.js";
import { sha256Hex } from "../src/auth/tokens.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { silentLogger, type Logger } from "../src/domain/logger.js";

const TOKEN = "s3cret-token-5d1e0b7a";
const TOKEN2 = "s3cret-token-99c4e21f";

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (obj: object, msg?: string) => lines.push(`${level} ${msg ?? ""} ${JSON.stringify(obj)}`);
  return { lines, debug: rec("debug"), info: rec("info"), warn: rec("warn"), error: rec("error") };
}

const POLICY = `roles:\n  reader:\n    - { permissions: [read], namespaces: ["*"], services: ["*"] }\nbindings:\n  ci: [reader]\n`;
const POLICY2 = `roles:\n  reader:\n    - { permissions: [read], namespaces: [prod], services: ["*"] }\nbindings:\n  ci: [reader]\n`;

function files() {
  const dir = mkdtempSync(join(tmpdir(), "maxine-auth-"));
  const tokens = join(dir, "tokens");
  const policy = join(dir, "policy.yaml");
  writeFileSync(tokens, `ci sha256:${sha256Hex(TOKEN)}\n`);
  writeFileSync(policy, POLICY);
  return { dir, tokens, policy };
}

describe("AuthState", () => {
  it("is disabled with an empty deny-all policy when nothing is configured", async () => {
    const s = await AuthState.load({}, silentLogger);
    expect(s.enabled).toBe(false);
    expect(s.tokens).toBeUndefined();
    expect(s.jwt).toBeUndefined();
    expect(s.policy.can(["reader"], "read", "prod", "x")).toBe(false);
    expect(await s.reload()).toBe(false);
  });

  it("loads tokens and policy; a bad file at start is a ConfigError naming file:line", async () => {
    const f = files();
    const s = await AuthState.load({ tokensFile: f.tokens, policyFile: f.policy }, silentLogger);
    expect(s.enabled).toBe(true);
    const p = s.tokens!.find(TOKEN)!;
    expect(p.name).toBe("ci");
    expect(s.policy.can([...p.roles, ...s.policy.rolesOf(p.name)], "read", "dev", "x")).toBe(true);
    writeFileSync(f.policy, "roles:\n  r:\n    - { permissions: [fly], namespaces: [a], services: [b] }\n");
    await expect(AuthState.load({ policyFile: f.policy }, silentLogger)).rejects.toThrow(new ConfigError(`${f.policy}:3: role r: unknown permission "fly" (read, register, admin, config_read or config_write)`));
    await expect(AuthState.load({ tokensFile: join(f.dir, "nope") }, silentLogger)).rejects.toThrow("cannot read the tokens file (ENOENT)");
  });

  it("reload applies good changes, calls listeners, and reports no change when files are the same", async () => {
    const f = files();
    const log = recordingLogger();
    const s = await AuthState.load({ tokensFile: f.tokens, policyFile: f.policy }, log);
    let calls = 0;
    s.onChange(() => calls++);
    expect(await s.reload()).toBe(false);
    expect(calls).toBe(0);
    writeFileSync(f.policy, POLICY2);
    writeFileSync(f.tokens, `ci sha256:${sha256Hex(TOKEN2)} reader\n`);
    expect(await s.reload()).toBe(true);
    expect(calls).toBe(1);
    expect(s.policy.can(["reader"], "read", "dev", "x")).toBe(false);
    expect(s.policy.can(["reader"], "read", "prod", "x")).toBe(true);
    expect(s.tokens!.find(TOKEN)).toBeUndefined();
    expect(s.tokens!.find(TOKEN2)?.roles).toEqual(["reader"]);
  });

  it("reload keeps the old policy and tokens on a bad file and logs why at warn, never a token", async () => {
    const f = files();
    const log = recordingLogger();
    const s = await AuthState.load({ tokensFile: f.tokens, policyFile: f.policy }, log);
    let calls = 0;
    s.onChange(() => calls++);
    const before = s.policy;
    writeFileSync(f.policy, "roles:\n  r:\n    - { permissions: [read], namespaces: [a], services: [b] }\nbindings:\n  ci: [ghost]\n");
    // a token pasted in clear by mistake
    writeFileSync(f.tokens, `ci ${TOKEN2} reader\n`);
    expect(await s.reload()).toBe(false);
    expect(calls).toBe(0);
    expect(s.policy).toBe(before);
    expect(s.tokens!.find(TOKEN)?.name).toBe("ci");
    const warns = log.lines.filter((l) => l.startsWith("warn"));
    expect(warns).toHaveLength(2);
    expect(warns.join("\n")).toContain(`${f.tokens}:1: the token must be given as sha256:<64 hex digits>`);
    expect(warns.join("\n")).toContain(`${f.policy}:5: bindings of \\"ci\\": unknown role \\"ghost\\"`);
    rmSync(f.policy);
    expect(await s.reload()).toBe(false);
    expect(log.lines.at(-1)).toContain("cannot read the policy file (ENOENT)");
    for (const line of log.lines) {
      expect(line).not.toContain(TOKEN);
      expect(line).not.toContain(TOKEN2);
      expect(line).not.toContain(sha256Hex(TOKEN));
    }
  });

  it("reload picks up rotated JWT keys and drops tokens of the old key", async () => {
    const f = files();
    const pem = join(f.dir, "jwt.pem");
    const k1 = await generateKeyPair("ES256");
    const k2 = await generateKeyPair("ES256");
    writeFileSync(pem, await exportSPKI(k1.publicKey));
    const jwt = { publicKeyFiles: [pem], clockSkewSeconds: 30, principalClaim: "sub", rolesClaim: "roles" };
    const s = await AuthState.load({ jwt }, silentLogger);
    expect(s.enabled).toBe(true);
    const exp = Math.floor(Date.now() / 1000) + 600;
    const t1 = await new SignJWT({ sub: "a", exp }).setProtectedHeader({ alg: "ES256" }).sign(k1.privateKey);
    const t2 = await new SignJWT({ sub: "b", exp }).setProtectedHeader({ alg: "ES256" }).sign(k2.privateKey);
    expect((await s.jwt!.verify(t1)).name).toBe("a");
    writeFileSync(pem, await exportSPKI(k2.publicKey));
    expect(await s.reload()).toBe(true);
    expect((await s.jwt!.verify(t2)).name).toBe("b");
    await expect(s.jwt!.verify(t1)).rejects.toThrow("JWT bad signature");
  });

  it("authOptionsOf maps the MAXINE_AUTH_* settings", () => {
    const none = authOptionsOf(loadConfig([], {}));
    expect(none).toEqual({ tokensFile: undefined, policyFile: undefined, jwt: undefined });
    const c = loadConfig(["--auth-tokens-file", "/t"], {
      MAXINE_AUTH_POLICY_FILE: "/p.yaml",
      MAXINE_AUTH_JWT_PUBLIC_KEYS: "/a.pem, /b.pem",
      MAXINE_AUTH_JWT_ISSUER: "https://issuer",
      MAXINE_AUTH_JWT_CLOCK_SKEW: "5s",
      MAXINE_AUTH_JWT_ROLES_CLAIM: "groups",
    });
    expect(authOptionsOf(c)).toEqual({
      tokensFile: "/t",
      policyFile: "/p.yaml",
      jwt: { jwksFile: undefined, publicKeyFiles: ["/a.pem", "/b.pem"], issuer: "https://issuer", audience: undefined, clockSkewSeconds: 5, principalClaim: "sub", rolesClaim: "groups" },
    });
    expect(() => loadConfig([], { MAXINE_AUTH_JWT_PRINCIPAL_CLAIM: "a b" })).toThrow("MAXINE_AUTH_JWT_PRINCIPAL_CLAIM: must be a JWT claim name");
    expect(() => loadConfig([], { MAXINE_AUTH_JWT_CLOCK_SKEW: "soon" })).toThrow(ConfigError);
  });
});
