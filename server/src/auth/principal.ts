/** AuthSource is where a principal's identity came from. */
export type AuthSource = "token" | "jwt" | "mtls";

/** AuthPrincipal is an authenticated caller: its name, the roles its credential carries, and how it proved it. */
export interface AuthPrincipal {
  readonly name: string;
  readonly roles: readonly string[];
  readonly source: AuthSource;
}

/**
 * AuthError is a credential that is wrong, expired or missing (UNAUTHENTICATED
 * on the wire). Its message says which; it never contains the credential.
 */
export class AuthError extends Error {
  override readonly name = "AuthError";
  constructor(message: string) {
    super(message);
  }
}
