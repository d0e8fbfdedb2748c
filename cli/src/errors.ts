import { Code, ConnectError } from "@connectrpc/connect";

/**
 * ExitCode is what `maxine` exits with; documented in the README and in
 * `maxine --help`: 0 ok, 1 error (the server refused or could not be
 * reached), 2 usage (a bad flag or argument), 3 not found.
 */
export const ExitCode = { OK: 0, ERROR: 1, USAGE: 2, NOT_FOUND: 3 } as const;

/** CliError is a failure the CLI reports as one line on stderr, with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.ERROR,
  ) {
    super(message);
  }
}

/** usage is a CliError for a bad flag or argument (exit 2). */
export function usage(message: string): CliError {
  return new CliError(message, ExitCode.USAGE);
}

/** failure turns anything thrown into what the user sees: the server's own message and the exit code for it, never a stack trace. */
export function failure(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ConnectError) {
    const code = err.code === Code.NotFound ? ExitCode.NOT_FOUND : ExitCode.ERROR;
    return new CliError(`${Code[err.code]}: ${err.rawMessage}`, code);
  }
  return new CliError(err instanceof Error ? err.message : String(err));
}
