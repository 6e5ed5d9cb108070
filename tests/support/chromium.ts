/**
 * Debian's Chromium driven by playwright-core, for the browser tests. A machine without it fails
 * the tests with the fix (CI installs it through scripts/install-prerequisites): a browser test
 * that skipped itself would let a broken page pass.
 */
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * A hostname the browser resolves to 127.0.0.1, as a DNS-rebinding attacker's own name would
 * resolve once rebound: a page on it is another site whose requests reach the local servers.
 */
export const REBOUND_HOSTNAME = "rebind.test";

export async function launchChromium(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `Chromium is missing at ${CHROMIUM_PATH}: the browser tests need Debian's chromium ` +
        "package. Install it with `sudo apt-get install -y chromium` (scripts/install-prerequisites " +
        "does, as CI runs it).",
    );
  }
  return await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      // Chromium refuses to start its sandbox as root (CI and the development machines run as
      // root).
      ...(Deno.uid() === 0 ? ["--no-sandbox"] : []),
      `--host-resolver-rules=MAP ${REBOUND_HOSTNAME} 127.0.0.1`,
    ],
  });
}

/** Where the browser tests keep their screenshots (gitignored). */
export const SCREENSHOTS_DIR = new URL("../../.test-results/screenshots/", import.meta.url);
