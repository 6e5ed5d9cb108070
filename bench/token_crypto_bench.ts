/**
 * What encrypting tokens at rest costs a refresh: µs of wall clock and of process CPU per
 * encryptToken and decryptToken (token_crypto.ts), and per ring import. A refresh decrypts its
 * refresh token and encrypts the new pair, within about 2 ms of function CPU in all.
 *
 *   deno run --allow-all bench/token_crypto_bench.ts [--iterations 1000]
 *
 * Runs in one process, without the stack: the figures are the crypto alone (node:crypto, called
 * synchronously; the ring import is awaited, as a function does once).
 */
import { parseArgs } from "node:util";
import { processCpuMs } from "../supabase/functions/_shared/refresh/clock.ts";
import {
  decryptToken,
  encryptToken,
  parseKeyRing,
  type TokenPlace,
} from "../supabase/functions/_shared/platform/token_crypto.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { iterations: { type: "string", default: "1000" } },
});
const iterations = Number(values.iterations);
if (!Number.isInteger(iterations) || iterations < 1) {
  console.error("--iterations must be a positive integer");
  Deno.exit(2);
}

function randomKey(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
}

/** Cafe24's tokens are about 22 characters; 64 leaves room. */
const TOKEN = "x".repeat(64);
const PLACE: TokenPlace = { kind: "connection", authSettingsId: crypto.randomUUID() };
const KEYS = JSON.stringify({ bench1: randomKey(), bench0: randomKey() });

interface Figure {
  name: string;
  wallUs: number;
  cpuUs: number | null;
}

async function measure(name: string, n: number, op: (i: number) => unknown) {
  for (let i = 0; i < Math.min(n, 50); i++) await op(i); // warm-up
  const cpu0 = processCpuMs();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await op(i);
  const wall = performance.now() - t0;
  const cpu1 = processCpuMs();
  return {
    name,
    wallUs: (wall * 1000) / n,
    cpuUs: cpu0 === null || cpu1 === null ? null : ((cpu1 - cpu0) * 1000) / n,
  } satisfies Figure;
}

const ring = await parseKeyRing(KEYS, "bench1");
const sealed: string[] = [];
for (let i = 0; i < iterations; i++) {
  const result = encryptToken(ring, PLACE, "refresh_token", `${TOKEN}${i}`);
  if (!result.ok) throw new Error("the bench ring has no active key");
  sealed.push(result.value);
}

const figures: Figure[] = [
  await measure(
    "encryptToken",
    iterations,
    (i) => encryptToken(ring, PLACE, "access_token", `${TOKEN}${i}`),
  ),
  await measure("decryptToken", iterations, (i) => {
    const result = decryptToken(ring, PLACE, "refresh_token", sealed[i]!);
    if (!result.ok) throw new Error(`decryption failed: ${result.reason}`);
  }),
  // Cache misses: a new pair of settings each time, as a new worker's first call.
  await measure(
    "parseKeyRing (2 keys, uncached)",
    Math.min(iterations, 200),
    (i) => parseKeyRing(KEYS, `bench${i % 2}-${i}`),
  ),
];
// A refresh: decrypt the refresh token, encrypt the new access and refresh tokens.
const perRefresh = figures[1]!.cpuUs !== null && figures[0]!.cpuUs !== null
  ? figures[1]!.cpuUs + 2 * figures[0]!.cpuUs
  : null;

const fixed = (n: number | null) => (n === null ? "n/a" : n.toFixed(1).padStart(8));
console.log(
  `token_crypto: ${iterations} iterations, Deno ${Deno.version.deno}, ${Deno.build.target}`,
);
console.log(`${"operation".padEnd(34)} ${"wall µs".padStart(8)} ${"CPU µs".padStart(8)}`);
for (const f of figures) console.log(`${f.name.padEnd(34)} ${fixed(f.wallUs)} ${fixed(f.cpuUs)}`);
console.log(
  `per refresh (1 decrypt + 2 encrypts): ${fixed(perRefresh).trim()} µs of CPU ` +
    `(the refresh's budget is about 2000 µs)`,
);
