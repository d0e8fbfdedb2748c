import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError } from "../config.js";
import type { AuthPrincipal } from "./principal.js";

const HASH = /^sha256:([0-9a-fA-F]{64})$/;
const ROLE = /^[A-Za-z0-9._:-]{1,128}$/;
const PRINCIPAL = /^\S{1,256}$/;

/** sha256Hex is the hex SHA-256 of a token's UTF-8 bytes, the form a tokens file stores. */
export function sha256Hex(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * TokenTable is a tokens file: one entry a line,
 *
 *     <principal> sha256:<64 hex digits> [role,role,...]
 *
 * with `#` comments and blank lines. Tokens are stored only as their SHA-256
 * (scripts/hash-token.mjs prints it); a principal may have several lines (token
 * rotation). Errors name file:line and the rule, never the line's content (it
 * may hold a token pasted in clear).
 */
export class TokenTable {
  readonly #byHash: ReadonlyMap<string, AuthPrincipal>;

  private constructor(byHash: ReadonlyMap<string, AuthPrincipal>) {
    this.#byHash = byHash;
  }

  /** size is the number of tokens in the table. */
  get size(): number {
    return this.#byHash.size;
  }

  /** load reads and parses a tokens file; an unreadable or invalid one throws ConfigError. */
  static load(path: string): TokenTable {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new ConfigError(`${path}: cannot read the tokens file (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    return TokenTable.parse(text, path);
  }

  /** parse reads a tokens file's text; file names it in errors. */
  static parse(text: string, file: string): TokenTable {
    const byHash = new Map<string, AuthPrincipal>();
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const at = `${file}:${i + 1}`;
      const line = lines[i]!.replace(/(^|\s)#.*$/, "").trim();
      if (line === "") continue;
      const fields = line.split(/\s+/);
      if (fields.length < 2 || fields.length > 3) {
        throw new ConfigError(`${at}: an entry is "<principal> sha256:<64 hex digits> [role,role,...]" (${fields.length} fields found)`);
      }
      const [name, hash, roleList] = fields as [string, string, string | undefined];
      if (!PRINCIPAL.test(name)) throw new ConfigError(`${at}: the principal must be 1..256 characters without spaces`);
      const m = HASH.exec(hash);
      if (m === null) {
        throw new ConfigError(`${at}: the token must be given as sha256:<64 hex digits> (scripts/hash-token.mjs prints the digest), never in clear`);
      }
      const digest = m[1]!.toLowerCase();
      if (byHash.has(digest)) throw new ConfigError(`${at}: the same token hash appears on an earlier line`);
      const roles = roleList === undefined ? [] : roleList.split(",");
      for (const role of roles) {
        if (!ROLE.test(role)) throw new ConfigError(`${at}: roles are a comma-separated list of names of 1..128 letters, digits, '.', '_', ':' or '-'`);
      }
      byHash.set(digest, Object.freeze({ name, roles: Object.freeze([...new Set(roles)]), source: "token" as const }));
    }
    return new TokenTable(byHash);
  }

  /** find returns the principal whose token this is, or undefined. */
  find(token: string): AuthPrincipal | undefined {
    return this.#byHash.get(sha256Hex(token));
  }
}
