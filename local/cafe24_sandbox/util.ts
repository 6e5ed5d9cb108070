import type { SandboxClock } from "./types.ts";

const KST_OFFSET_MS = 9 * 60 * 60 * 1000;

/**
 * Cafe24's timestamp format: Korea wall time, `YYYY-MM-DDTHH:mm:ss.SSS`, no offset. Shifting the
 * instant and reading it back as UTC keeps the result independent of the host's time zone.
 */
export function formatKst(epochMs: number): string {
  return new Date(epochMs + KST_OFFSET_MS).toISOString().slice(0, 23);
}

/** Small seeded PRNG: the same seed gives the same fault sequence on every run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Tokens and codes come from the system CSPRNG, not the seeded PRNG: a restarted sandbox with the
 * same seed must not hand out tokens that a database still holds from the previous run.
 */
export function randomToken(bytes = 16): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes));
  let binary = "";
  for (const byte of raw) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Starts at real time and keeps ticking with it; tests shift it instead of waiting. */
export function createClock(): SandboxClock {
  let offset = 0;
  return {
    now: () => Date.now() + offset,
    advance(ms: number) {
      offset += ms;
    },
    set(ms: number) {
      offset = ms - Date.now();
    },
  };
}

// Cafe24 sign-up rule (lowercase letters and digits, not starting with a digit). Enforcing it
// also keeps the mall a single, unambiguous path segment.
const MALL_ID = /^[a-z][a-z0-9]{0,31}$/;

export function isValidMallId(mallId: string): boolean {
  return MALL_ID.test(mallId);
}

export function assertMallId(mallId: string): void {
  if (!isValidMallId(mallId)) {
    throw new Error(`invalid mall_id ${JSON.stringify(mallId)}: expected ${MALL_ID}`);
  }
}

export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || host.startsWith("127.") ||
    host.startsWith("::ffff:127.");
}

export function jsonResponse(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

export function htmlResponse(
  status: number,
  html: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(html, {
    status,
    headers: { "content-type": "text/html; charset=utf-8", ...headers },
  });
}

/** The resource-API error shape (`{"error":{"code","message"}}`), unlike the OAuth one. */
export function apiError(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return jsonResponse(status, { error: { code: status, message } }, headers);
}

export function oauthError(
  status: number,
  error: string,
  description: string,
): Response {
  return jsonResponse(status, { error, error_description: description });
}

/**
 * Wall-clock wait (latency and hangs are about real time, not the sandbox clock). Resolves early
 * with "aborted" when any signal fires, and always clears its timer so Deno's test sanitizers
 * see no leak.
 */
export function sleep(ms: number, signals: AbortSignal[]): Promise<"elapsed" | "aborted"> {
  if (signals.some((s) => s.aborted)) return Promise.resolve("aborted");
  return new Promise((resolve) => {
    const onAbort = () => finish("aborted");
    const timer = setTimeout(() => finish("elapsed"), Math.max(0, ms));
    function finish(outcome: "elapsed" | "aborted") {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", onAbort);
      resolve(outcome);
    }
    for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
  });
}

/** Client credentials from Basic auth, falling back to the form body (both are documented). */
export function clientCredentials(
  request: Request,
  form: URLSearchParams,
): { clientId: string; clientSecret: string } | undefined {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const match = /^Basic\s+(\S+)$/i.exec(header);
    if (match === null || match[1] === undefined) return undefined;
    let decoded: string;
    try {
      decoded = atob(match[1]);
    } catch {
      return undefined;
    }
    const colon = decoded.indexOf(":");
    if (colon < 0) return undefined;
    return { clientId: decoded.slice(0, colon), clientSecret: decoded.slice(colon + 1) };
  }
  const clientId = form.get("client_id");
  const clientSecret = form.get("client_secret");
  if (clientId === null || clientSecret === null) return undefined;
  return { clientId, clientSecret };
}

export function isFormRequest(request: Request): boolean {
  const type = request.headers.get("content-type") ?? "";
  return type.split(";")[0]?.trim().toLowerCase() === "application/x-www-form-urlencoded";
}
