/**
 * Work that goes on after the response: on Supabase, `EdgeRuntime.waitUntil` keeps the worker
 * alive for it; under plain Deno (tests, npm start) the pending promise keeps running anyway.
 * Failures are the work's own to log; nothing here rethrows them.
 */
export function continueAfterResponse(work: Promise<unknown>): void {
  const settled = work.catch(() => {});
  globalThis.EdgeRuntime?.waitUntil(settled);
}

declare global {
  // Supabase's Edge Runtime global; absent under plain Deno.
  var EdgeRuntime: { waitUntil(promise: Promise<unknown>): void } | undefined;
}
