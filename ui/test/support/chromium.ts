import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/** CHROMIUM is Debian's chromium, which scripts/ensure-test-tools.sh installs with apt-get (MAXINE_CHROMIUM overrides the path). */
export const CHROMIUM = process.env.MAXINE_CHROMIUM ?? "/usr/bin/chromium";

/**
 * launchChromium starts the system's Chromium headless through
 * playwright-core, which downloads no browser. A Chromium that is missing
 * or does not start fails the test, saying how to install it: the browser
 * tests never skip.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: run scripts/ensure-test-tools.sh (as root it runs apt-get install chromium), or set MAXINE_CHROMIUM`);
  }
  // the sandbox needs user namespaces that a root user (CI) does not get
  const args = process.getuid?.() === 0 ? ["--no-sandbox"] : [];
  try {
    return await chromium.launch({ executablePath: CHROMIUM, headless: true, args, timeout: 30_000 });
  } catch (err) {
    throw new Error(`Chromium at ${CHROMIUM} did not start: ${(err as Error).message}`);
  }
}
