import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TokenTable, sha256Hex } from "../src/auth/tokens.js";
import { ConfigError } from "../src/config.js";

const SCRIPT = new URL("../../scripts/hash-token.mjs", import.meta.url).pathname;
const TOKEN_A = "tok-alpha-7f3c91d2e8";
const TOKEN_B = "tok-bravo-0a4b66c1f2";

const file = [
  "# principal  token hash  roles",
  "",
  `ci-payments sha256:${sha256Hex(TOKEN_A)} payments-writer,reader   # deploy bot`,
  `ops sha256:${sha256Hex(TOKEN_B).toUpperCase()}`,
].join("\n");

describe("TokenTable", () => {
  it("finds the principal of a listed token by its hash, and nothing for another", () => {
    const t = TokenTable.parse(file, "tokens.txt");
    expect(t.size).toBe(2);
    expect(t.find(TOKEN_A)).toEqual({ name: "ci-payments", roles: ["payments-writer", "reader"], source: "token" });
    expect(t.find(TOKEN_B)).toEqual({ name: "ops", roles: [], source: "token" });
    expect(t.find("tok-alpha-7f3c91d2e9")).toBeUndefined();
    expect(t.find("")).toBeUndefined();
    // the hash itself is not a token
    expect(t.find(sha256Hex(TOKEN_A))).toBeUndefined();
  });

  it.each([
    ["ci sha256:abc reader", 1, "must be given as sha256:<64 hex digits>"],
    [`ci ${TOKEN_A} reader`, 1, "never in clear"],
    [`ci ${sha256Hex(TOKEN_A)}`, 1, "sha256:<64 hex digits>"],
    ["only-one-field", 1, "(1 fields found)"],
    [`ci sha256:${sha256Hex(TOKEN_A)} reader extra`, 1, "(4 fields found)"],
    [`ci sha256:${sha256Hex(TOKEN_A)} read/er`, 1, "roles are a comma-separated list"],
    [`ci sha256:${sha256Hex(TOKEN_A)} a,,b`, 1, "roles are a comma-separated list"],
    [`# c\n\nci sha256:${sha256Hex(TOKEN_A)}\nother sha256:${sha256Hex(TOKEN_A)}`, 4, "same token hash appears on an earlier line"],
  ])("rejects %j at line %i: %s", (text, line, rule) => {
    let err: unknown;
    try {
      TokenTable.parse(text, "/etc/maxine/tokens");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message.startsWith(`/etc/maxine/tokens:${line}: `)).toBe(true);
    expect(message).toContain(rule);
    // an error never quotes the line: it may hold a token pasted in clear
    expect(message).not.toContain(TOKEN_A);
  });

  it("load reads a file and names an unreadable one", () => {
    const dir = mkdtempSync(join(tmpdir(), "maxine-tokens-"));
    writeFileSync(join(dir, "tokens"), file);
    expect(TokenTable.load(join(dir, "tokens")).size).toBe(2);
    expect(() => TokenTable.load(join(dir, "missing"))).toThrow(`${join(dir, "missing")}: cannot read the tokens file (ENOENT)`);
  });

  it("scripts/hash-token.mjs prints the digest a tokens file stores", () => {
    const hex = execFileSync(process.execPath, [SCRIPT], { input: `${TOKEN_A}\n` }).toString().trim();
    expect(hex).toBe(sha256Hex(TOKEN_A));
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    const t = TokenTable.parse(`bot sha256:${hex} reader`, "t");
    expect(t.find(TOKEN_A)?.name).toBe("bot");
    const empty = spawnSync(process.execPath, [SCRIPT], { input: "" });
    expect(empty.status).toBe(2);
    expect(empty.stderr.toString()).toContain("no token on stdin");
  });
});

describe("docs/security.md", () => {
  it("its tokens-file example parses and finds the tokens it names", () => {
    const doc = readFileSync(new URL("../../docs/security.md", import.meta.url), "utf8");
    const block = /## Tokens file[\s\S]*?```\n([\s\S]*?)```/.exec(doc)![1]!;
    const t = TokenTable.parse(block, "docs/security.md");
    expect(t.size).toBe(2);
    expect(t.find("example-token-ci-payments")).toEqual({ name: "ci-payments", roles: ["payments-writer"], source: "token" });
    expect(t.find("example-token-ops")?.roles).toEqual(["admin", "reader"]);
  });
});
