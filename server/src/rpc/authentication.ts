import type { Access, Permission } from "../domain/access.js";
import { Reason, RegistryError } from "../domain/errors.js";
import type { CallContext, Interceptor, Principal } from "./context.js";

/** ProvenPrincipal is who a credential proves the caller is (auth/principal.ts's AuthPrincipal). */
export interface ProvenPrincipal {
  readonly name: string;
  readonly roles: readonly string[];
  readonly source: "token" | "jwt" | "mtls";
}

/** PolicyView is what authorization asks of the policy (auth/policy.ts's Policy). */
export interface PolicyView {
  rolesOf(principalName: string): readonly string[];
  can(roles: readonly string[], perm: Permission, namespace: string, service: string): boolean;
  canAll(roles: readonly string[], perm: Permission, namespace: string): boolean;
  canAny(roles: readonly string[], perm: Permission, namespace: string): boolean;
}

/**
 * Credentials are the server's means of authentication, as the
 * authentication interceptor uses them (auth/auth-state.ts's AuthState:
 * reloadable, so each call reads the current tokens and policy).
 */
export interface Credentials {
  /** enabled: a tokens file, JWT keys or required client certificates are configured. */
  readonly enabled: boolean;
  readonly tokens: { find(token: string): ProvenPrincipal | undefined } | undefined;
  readonly jwt: { looksLikeJwt(token: string): boolean; verify(token: string): Promise<ProvenPrincipal> } | undefined;
  readonly policy: PolicyView;
  /** onChange runs fn after a reload changed the files. */
  onChange(fn: () => void): void;
}

/** ADMITTED_MAX bounds the tokens whose principal and access are kept between calls. */
const ADMITTED_MAX = 1024;

/** AuthenticationOptions configure the authentication interceptor. */
export interface AuthenticationOptions {
  readonly credentials: Credentials;
  /** publicServices are served without credentials (MAXINE_AUTH_PUBLIC_SERVICES, e.g. grpc.health.v1.Health). */
  readonly publicServices: ReadonlySet<string>;
  /** peerIdentity is the verified client certificate identity of the call's connection (mTLS), if any. */
  readonly peerIdentity: (ctx: CallContext) => string | undefined;
}

/**
 * authenticationInterceptor proves who every call acts for, before any
 * handler runs, on every protocol: a bearer token (`authorization: Bearer
 * ...`) from the tokens file (compared by SHA-256) or a JWT verified against
 * local keys, else the connection's verified client certificate. It sets
 * the call's principal and its access: the policy's permissions for the
 * principal's roles, read at each check so a reloaded policy applies at
 * once. A missing, malformed, unknown or expired credential is
 * UNAUTHENTICATED with a message that says which, never the token.
 * While authentication is off, every call is "anonymous" with every
 * permission.
 */
export function authenticationInterceptor(opts: AuthenticationOptions): Interceptor {
  const { credentials, publicServices } = opts;
  const resolve = (p: ProvenPrincipal): Admitted => {
    const extra = credentials.policy.rolesOf(p.name);
    const roles = extra.length === 0 ? p.roles : [...new Set([...p.roles, ...extra])];
    const principal: Principal = { name: p.name, roles, source: p.source };
    return { principal, access: new PolicyAccess(principal.name, roles, credentials) };
  };
  const admit = (ctx: CallContext, a: Admitted): void => {
    ctx.principal = a.principal;
    ctx.access = a.access;
  };
  // A token of the tokens file, once found, is kept with its principal and
  // access (they hold no expiry): the next call with it costs a map lookup,
  // not a SHA-256 and two objects. Emptied on every reload.
  const admitted = new Map<string, Admitted>();
  credentials.onChange(() => admitted.clear());
  return {
    onStart(ctx) {
      if (!credentials.enabled || publicServices.has(ctx.method.service)) return;
      const header = ctx.header("authorization");
      if (header === undefined) {
        const identity = opts.peerIdentity(ctx);
        if (identity !== undefined) return admit(ctx, resolve({ name: identity, roles: [], source: "mtls" }));
        throw unauthenticated("no credentials: send `authorization: Bearer <token>` or a client certificate");
      }
      const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
      if (m === null) throw unauthenticated("the authorization header must be `Bearer <token>`");
      const token = m[1]!;
      const known = admitted.get(token);
      if (known !== undefined) return admit(ctx, known);
      const found = credentials.tokens?.find(token);
      if (found !== undefined) {
        const a = resolve(found);
        if (admitted.size >= ADMITTED_MAX) admitted.delete(admitted.keys().next().value!);
        admitted.set(token, a);
        return admit(ctx, a);
      }
      const jwt = credentials.jwt;
      if (jwt === undefined || !jwt.looksLikeJwt(token)) throw unauthenticated("the bearer token is not one this server knows");
      return jwt.verify(token).then(
        (p) => admit(ctx, resolve(p)),
        (err: unknown) => {
          throw unauthenticated(
            err instanceof Error && err.name === "AuthError" ? `the bearer JWT is not accepted: ${err.message}` : "the bearer JWT could not be verified",
          );
        },
      );
    },
  };
}

interface Admitted {
  readonly principal: Principal;
  readonly access: Access;
}

function unauthenticated(message: string): RegistryError {
  return new RegistryError(Reason.UNAUTHENTICATED, `unauthenticated: ${message}`);
}

/** PolicyAccess is an authenticated principal's access: the current policy's permissions for its roles. */
class PolicyAccess implements Access {
  constructor(
    readonly principal: string,
    private readonly roles: readonly string[],
    private readonly credentials: Credentials,
  ) {}

  allows(perm: Permission, namespace: string, service: string): boolean {
    return this.credentials.policy.can(this.roles, perm, namespace, service);
  }

  allowsAll(perm: Permission, namespace: string): boolean {
    return this.credentials.policy.canAll(this.roles, perm, namespace);
  }

  allowsAny(perm: Permission, namespace: string): boolean {
    return this.credentials.policy.canAny(this.roles, perm, namespace);
  }
}
