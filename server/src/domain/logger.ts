/**
 * Logger is the slice of pino's interface the core uses, so the core takes a
 * logger as an argument and never imports a logging transport.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** silentLogger drops everything; for tests and embedding. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
