import { X509Certificate, createPrivateKey, type KeyObject } from "node:crypto";
import { readFileSync, unwatchFile, watchFile, type Stats } from "node:fs";
import tls from "node:tls";
import type { Logger } from "../domain/logger.js";

/** TlsFiles name the PEM files of the server's TLS identity and, for mTLS, the CAs its clients' certificates must chain to. */
export interface TlsFiles {
  /** cert is the server's certificate chain, leaf first (MAXINE_TLS_CERT). */
  readonly cert: string;
  /** key is the certificate's private key (MAXINE_TLS_KEY). */
  readonly key: string;
  /** ca, when not "", holds the CA certificates client certificates are verified against (MAXINE_TLS_CA). */
  readonly ca: string;
}

/** LoadedCertificate is a secure context ready for the TLS server, with what the logs tell of it. */
export interface LoadedCertificate {
  readonly options: tls.SecureContextOptions;
  readonly subject: string;
  readonly notAfter: string;
  readonly fingerprint256: string;
}

/** TlsFileError is a certificate, key or CA file that cannot be used; its message names the setting and the file. */
export class TlsFileError extends Error {
  override readonly name = "TlsFileError";
}

function read(path: string, setting: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsFileError(`${setting}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * loadCertificate reads and checks the TLS files: the certificate and the
 * CA file must be PEM certificates, the key a PEM private key that matches
 * the certificate, and OpenSSL must accept them together. Any failure is a
 * TlsFileError naming the setting, the file and the rule; nothing is
 * half-loaded.
 */
export function loadCertificate(files: TlsFiles): LoadedCertificate {
  const certPem = read(files.cert, "MAXINE_TLS_CERT");
  const keyPem = read(files.key, "MAXINE_TLS_KEY");
  const caPem = files.ca === "" ? undefined : read(files.ca, "MAXINE_TLS_CA");
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPem);
  } catch (err) {
    throw new TlsFileError(`MAXINE_TLS_CERT: ${files.cert} is not a PEM certificate (${(err as Error).message})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new TlsFileError(`MAXINE_TLS_KEY: ${files.key} is not a PEM private key without a passphrase (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsFileError(`MAXINE_TLS_KEY: the key in ${files.key} does not match the certificate in ${files.cert} (MAXINE_TLS_CERT)`);
  }
  if (caPem !== undefined) {
    try {
      new X509Certificate(caPem);
    } catch (err) {
      throw new TlsFileError(`MAXINE_TLS_CA: ${files.ca} is not a PEM certificate (${(err as Error).message})`);
    }
  }
  const options: tls.SecureContextOptions = { cert: certPem, key: keyPem, ...(caPem !== undefined ? { ca: caPem } : {}) };
  try {
    tls.createSecureContext(options);
  } catch (err) {
    throw new TlsFileError(`MAXINE_TLS_CERT: OpenSSL refused ${files.cert} with its key and CA: ${(err as Error).message}`);
  }
  return { options, subject: leaf.subject.replaceAll("\n", ", "), notAfter: leaf.validTo, fingerprint256: leaf.fingerprint256 };
}

/** DEBOUNCE_MS lets a certificate and its key that are replaced together be read together. */
const DEBOUNCE_MS = 100;

/**
 * CertificateReloader swaps the TLS server's certificate without a restart:
 * when one of the files changes (polled every intervalMs; 0 disables it) or
 * when reload is called (main calls it on SIGHUP). A new file set that
 * fails loadCertificate is refused: the previous certificate stays in use
 * and the reason is logged at warn. Open connections keep the certificate
 * they were made with; new ones get the new certificate.
 */
export class CertificateReloader {
  private readonly watched: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly onChange = (curr: Stats, prev: Stats): void => {
    if (curr.mtimeMs === prev.mtimeMs && curr.ino === prev.ino && curr.size === prev.size) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.reload("file changed"), DEBOUNCE_MS).unref();
  };

  constructor(
    private readonly files: TlsFiles,
    private readonly apply: (loaded: LoadedCertificate) => void,
    private readonly log: Logger,
    intervalMs: number,
  ) {
    if (intervalMs <= 0) return;
    for (const path of [files.cert, files.key, files.ca]) {
      if (path === "" || this.watched.includes(path)) continue;
      watchFile(path, { interval: intervalMs, persistent: false }, this.onChange);
      this.watched.push(path);
    }
  }

  /** reload reads the files again and, when they pass, serves new connections with them; it reports whether it did. */
  reload(trigger: string): boolean {
    let loaded: LoadedCertificate;
    try {
      loaded = loadCertificate(this.files);
    } catch (err) {
      this.log.warn({ trigger, err: (err as Error).message }, "TLS certificate not reloaded: keeping the previous one");
      return false;
    }
    this.apply(loaded);
    this.log.info({ trigger, subject: loaded.subject, notAfter: loaded.notAfter, fingerprint256: loaded.fingerprint256 }, "TLS certificate reloaded");
    return true;
  }

  /** close stops watching the files. */
  close(): void {
    clearTimeout(this.timer);
    for (const path of this.watched) unwatchFile(path, this.onChange);
    this.watched.length = 0;
  }
}
