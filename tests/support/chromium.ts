/**
 * Debian's Chromium driven by playwright-core, for the browser tests. A machine without it fails
 * the tests with the fix (CI installs it through scripts/install-prerequisites): a browser test
 * that skipped itself would let a broken page pass.
 */
import { type Browser, chromium } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

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
    // Chromium refuses to start its sandbox as root (CI and the development machines run as root).
    args: Deno.uid() === 0 ? ["--no-sandbox"] : [],
  });
}

/** Where the browser tests keep their screenshots (gitignored). */
export const SCREENSHOTS_DIR = new URL("../../.test-results/screenshots/", import.meta.url);
