import { readFileSync } from "node:fs";
import { ConfigError, type Config } from "../config.js";
import type { Logger } from "../domain/logger.js";
import { JwtVerifier, type JwtOptions } from "./jwt.js";
import { Policy } from "./policy.js";
import { TokenTable } from "./tokens.js";

/** AuthOptions name the files authentication and authorization read. */
export interface AuthOptions {
  tokensFile?: string;
  policyFile?: string;
  jwt?: JwtOptions;
}

/** AuthSettings are the MAXINE_AUTH_* settings. */
export type AuthSettings = Pick<
  Config,
  | "authTokensFile"
  | "authPolicyFile"
  | "authJwksFile"
  | "authJwtPublicKeys"
  | "authJwtIssuer"
  | "authJwtAudience"
  | "authJwtClockSkewMs"
  | "authJwtPrincipalClaim"
  | "authJwtRolesClaim"
>;

/** authOptionsOf maps the MAXINE_AUTH_* settings to AuthOptions (empty settings are left out). */
export function authOptionsOf(c: AuthSettings): AuthOptions {
  const orUndefined = (s: string) => (s === "" ? undefined : s);
  const publicKeyFiles = c.authJwtPublicKeys.split(",").map((f) => f.trim()).filter((f) => f !== "");
  const jwksFile = orUndefined(c.authJwksFile);
  return {
    tokensFile: orUndefined(c.authTokensFile),
    policyFile: orUndefined(c.authPolicyFile),
    jwt:
      jwksFile !== undefined || publicKeyFiles.length > 0
        ? {
            jwksFile,
            publicKeyFiles,
            issuer: orUndefined(c.authJwtIssuer),
            audience: orUndefined(c.authJwtAudience),
            clockSkewSeconds: c.authJwtClockSkewMs / 1000,
            principalClaim: c.authJwtPrincipalClaim,
            rolesClaim: c.authJwtRolesClaim,
          }
        : undefined,
  };
}

/** Loaded is one file's parsed form and the text it came from (to tell whether a reload changes anything). */
interface Loaded<T> {
  readonly value: T;
  readonly text: string;
}

/** readText reads a configured file; failure is a ConfigError naming the file and the errno code. */
function readText(path: string, what = "file"): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`${path}: cannot read the ${what} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function jwtFiles(jwt: JwtOptions): string {
  const files = [...(jwt.jwksFile === undefined ? [] : [jwt.jwksFile]), ...(jwt.publicKeyFiles ?? [])];
  return files.map((f) => `${f}\0${readText(f, "JWT key file")}`).join("\0");
}

/**
 * AuthState is what the server holds for authentication and authorization:
 * the tokens table, the JWT verifier and the policy. reload (SIGHUP) re-reads
 * the files; a bad file keeps the old state and is logged at warn.
 */
export class AuthState {
  #tokens: Loaded<TokenTable> | undefined;
  #jwt: Loaded<JwtVerifier> | undefined;
  #policy: Loaded<Policy> | undefined;
  readonly #opts: AuthOptions;
  readonly #log: Logger;
  readonly #listeners: (() => void)[] = [];
  /** enabled is true when a tokens file or a JWT key is configured: callers then need a credential. */
  readonly enabled: boolean;

  private constructor(opts: AuthOptions, log: Logger) {
    this.#opts = opts;
    this.#log = log;
    this.enabled = opts.tokensFile !== undefined || opts.jwt !== undefined;
  }

  /** load reads every configured file; any error is a ConfigError naming the file (and line). */
  static async load(opts: AuthOptions, log: Logger): Promise<AuthState> {
    const state = new AuthState(opts, log);
    if (opts.tokensFile !== undefined) state.#tokens = AuthState.#loadTokens(opts.tokensFile);
    if (opts.policyFile !== undefined) state.#policy = AuthState.#loadPolicy(opts.policyFile);
    if (opts.jwt !== undefined) state.#jwt = await AuthState.#loadJwt(opts.jwt);
    return state;
  }

  static #loadTokens(path: string): Loaded<TokenTable> {
    const text = readText(path, "tokens file");
    return { value: TokenTable.parse(text, path), text };
  }

  static #loadPolicy(path: string): Loaded<Policy> {
    const text = readText(path, "policy file");
    return { value: Policy.parse(text, path), text };
  }

  static async #loadJwt(opts: JwtOptions): Promise<Loaded<JwtVerifier>> {
    const value = await JwtVerifier.load(opts);
    return { value, text: jwtFiles(opts) };
  }

  get tokens(): TokenTable | undefined {
    return this.#tokens?.value;
  }

  get jwt(): JwtVerifier | undefined {
    return this.#jwt?.value;
  }

  /** policy is the current policy; an empty one (deny all) when no policy file is configured. */
  get policy(): Policy {
    return (this.#policy ??= { value: Policy.empty(), text: "" }).value;
  }

  /** onChange registers fn to run after a reload that changed something. */
  onChange(fn: () => void): void {
    this.#listeners.push(fn);
  }

  /**
   * reload re-reads the tokens file, the policy file and the JWT key files.
   * Each file that fails to read or parse keeps its old contents and is
   * logged at warn (the error names file and line, never a token). Returns
   * whether anything changed; listeners run after a change.
   */
  async reload(): Promise<boolean> {
    let changed = false;
    const { tokensFile, policyFile, jwt } = this.#opts;
    if (tokensFile !== undefined) {
      const next = this.#attempt("tokens file", tokensFile, () => AuthState.#loadTokens(tokensFile));
      if (next !== undefined && next.text !== this.#tokens?.text) {
        this.#tokens = next;
        changed = true;
      }
    }
    if (policyFile !== undefined) {
      const next = this.#attempt("policy file", policyFile, () => AuthState.#loadPolicy(policyFile));
      if (next !== undefined && next.text !== this.#policy?.text) {
        this.#policy = next;
        changed = true;
      }
    }
    if (jwt !== undefined) {
      let text: string | undefined;
      try {
        text = jwtFiles(jwt);
      } catch (err) {
        this.#warn("JWT key files", undefined, err);
      }
      if (text !== undefined && text !== this.#jwt?.text) {
        try {
          this.#jwt = { value: await JwtVerifier.load(jwt), text };
          changed = true;
        } catch (err) {
          this.#warn("JWT key files", undefined, err);
        }
      }
    }
    if (changed) {
      this.#log.info({ tokens: this.tokens?.size ?? 0 }, "authentication files reloaded");
      for (const fn of this.#listeners) fn();
    }
    return changed;
  }

  #attempt<T>(what: string, path: string, load: () => T): T | undefined {
    try {
      return load();
    } catch (err) {
      this.#warn(what, path, err);
      return undefined;
    }
  }

  #warn(what: string, path: string | undefined, err: unknown): void {
    const e = err as NodeJS.ErrnoException;
    const reason = e.name === "ConfigError" ? e.message : `${e.code ?? e.name ?? "error"}`;
    this.#log.warn({ file: path, reason }, `reload: keeping the old ${what}`);
  }
}
