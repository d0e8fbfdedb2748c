import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const SCRIPT = fileURLToPath(new URL("../../../scripts/make-test-certs.sh", import.meta.url));

/** TestCerts is a temporary directory of certificates made by scripts/make-test-certs.sh. */
export interface TestCerts {
  readonly dir: string;
  /** path is a file of the directory, e.g. path("server.pem"). */
  path(name: string): string;
  /** pem reads a file of the directory. */
  pem(name: string): Promise<Buffer>;
  /** remove deletes the directory. */
  remove(): Promise<void>;
}

/**
 * makeTestCerts runs scripts/make-test-certs.sh (openssl) into a fresh
 * temporary directory. openssl missing fails the test that asked, loudly.
 */
export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), "maxine-certs-"));
  await promisify(execFile)("bash", [SCRIPT, dir], { timeout: 30_000 });
  return {
    dir,
    path: (name) => join(dir, name),
    pem: (name) => readFile(join(dir, name)),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
