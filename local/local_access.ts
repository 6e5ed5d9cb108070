/**
 * What every local server (the gateway, the functions process, the settings page, the Cafe24
 * sandbox, the Auth stand-in) checks before anything else, and the per-start token that guards
 * what hands out sessions and tokens.
 *
 * DNS rebinding: any web page can point a hostname of its own at 127.0.0.1; the browser then
 * treats a local server as that page's own origin and lets the page read its answers. The request
 * still names the page's hostname in `Host`, so a server that answers only `127.0.0.1:<its port>`
 * and `localhost:<its port>` (and `[::1]:<its port>`) answers no such page. Such a request gets
 * 421 Misdirected Request: it reached a server that does not serve that name.
 *
 * Host alone does not stop another local process, which can send any Host it likes: what hands
 * out a session or a live token also wants the stack's token (`control_token` in stack.json, mode
 * 0600), which only this machine's user who started the stack can read.
 */
import { secretsMatch } from "../supabase/functions/_shared/platform/secrets.ts";

/** The loopback names every local server answers to. */
const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"];

/**
 * The `Host` values a local server on `port` answers: the loopback names with its port, plus
 * `extra` (exact `Host` values a user configured, such as a tunnel's or Docker's host name).
 */
export function allowedHosts(port: number, extra: readonly string[] = []): Set<string> {
  return new Set([
    ...LOOPBACK_NAMES.map((name) => `${name}:${port}`),
    ...extra.map((host) => host.toLowerCase()),
  ]);
}

/** `hostname:port` as a `Host` header names it (an IPv6 address in brackets). */
export function hostHeader(hostname: string, port: number): string {
  return `${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
}

/** The request's `Host`, as the client sent it (HTTP/2 has none: then the URL's authority). */
function requestHost(request: Request): string {
  return (request.headers.get("host") ?? new URL(request.url).host).toLowerCase();
}

/**
 * null when `Host` is one of `allowed`; otherwise the 421 to answer. The refused name is not
 * echoed: the answer says only what this server does answer.
 */
export function misdirected(request: Request, allowed: ReadonlySet<string>): Response | null {
  if (allowed.has(requestHost(request))) return null;
  return Response.json({
    error: "MISDIRECTED_REQUEST",
    detail: `this local server answers only requests addressed to ${
      [...allowed].filter((host) => !host.startsWith("[")).map((host) => `http://${host}`)
        .join(" or ")
    }`,
  }, { status: 421, headers: { "Cache-Control": "no-store" } });
}

/** A fresh per-start token (256 bits, base64url). */
export function newControlToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Whether `Authorization: Bearer <token>` carries `token` (compared in constant time). */
export function bearerMatches(request: Request, token: string): boolean {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  return match !== null && secretsMatch(match[1]!, token);
}
