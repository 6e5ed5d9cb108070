/**
 * Serves the reference settings page (index.html + settings.js, as they are: no build step) on its
 * own origin, so that its calls to the functions are real cross-origin requests with CORS, as from
 * an app's own domain. `npm start` runs it on SETTINGS_PAGE_PORT and points CAFE24_APP_RETURN_URL
 * at it; the browser tests run it on any free port.
 *
 * The one thing it adds that a real app does not have: sign-in. The local stack has no Supabase
 * Auth, so `POST /demo-session {"user": key}` answers a session (shaped like supabase-js's) for one
 * of the configured demo users, minted by the local Auth stand-in. A session for any demo user is
 * worth guarding, so it goes only to this page in a browser that opened it from the link
 * `npm start` printed:
 *   - every request must name this server in `Host` (127.0.0.1 or localhost with its port): a web
 *     page that points its own hostname here (DNS rebinding) gets 421;
 *   - the link carries the stack's control token in its fragment (`#key=…`, which never reaches a
 *     server log or a Referer); the page posts it to `POST /demo-key` at once and removes it from
 *     the address bar, and gets a session cookie in exchange (HttpOnly: no script reads it;
 *     SameSite=Strict: no other site's request carries it);
 *   - `/demo-session` wants that cookie and this page's own Origin. `Origin` alone proves nothing
 *     to a local process, which can send any header; the cookie it can only get with the token,
 *     which only stack.json (mode 0600) holds.
 */
import { allowedHosts, misdirected, newControlToken } from "../local_access.ts";
import { DEFAULT_PORTS } from "../stack/stack_info.ts";
import { secretsMatch } from "../../supabase/functions/_shared/platform/secrets.ts";

export const SETTINGS_PAGE_PORT = DEFAULT_PORTS.settings;

export interface DemoUser {
  /** What the page posts to /demo-session. */
  key: string;
  id: string;
  email: string;
  /** Shown in the page's list. */
  label: string;
}

export interface SettingsPageOptions {
  hostname?: string;
  /** Default SETTINGS_PAGE_PORT; 0 = any free port. */
  port?: number;
  /** The project URL: the functions are under `${supabaseUrl}/functions/v1/`. */
  supabaseUrl: string;
  /** Sent as `apikey`, as supabase-js does. */
  anonKey: string;
  demoUsers: DemoUser[];
  /** An access token for `user`, from the Auth stand-in. */
  mintAccessToken(user: DemoUser, ttlSeconds: number): Promise<string>;
  /** The stack's control token: what `launchUrl` carries and `POST /demo-key` wants. */
  controlToken: string;
  /** Pre-filled in the form. */
  defaultMallId?: string;
  /** The scopes offered (the app's CAFE24_SCOPES). */
  scopes?: string[];
}

export interface SettingsPage {
  /** The page, e.g. http://127.0.0.1:54330/ — the stack's CAFE24_APP_RETURN_URL. */
  url: string;
  /**
   * The page with the control token in its fragment (`#key=…`): the link to open first in a
   * browser, which then signs in. The page removes the token from the address bar at once.
   */
  launchUrl: string;
  origin: string;
  port: number;
  close(): Promise<void>;
}

const SESSION_TTL_SECONDS = 3600;
const FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  "/settings.js": { file: "settings.js", type: "text/javascript; charset=utf-8" },
};

/** The page's settings block, whose content the server replaces with its own. */
const CONFIG_BLOCK = /(<script type="application\/json" id="app-config">)[\s\S]*?(<\/script>)/;

/** The page's URL on `hostname:port`: what CAFE24_APP_RETURN_URL is set to. */
export function settingsPageUrl(hostname: string, port: number): string {
  return `http://${hostname}:${port}/`;
}

/** The fragment parameter of `launchUrl` that carries the control token. */
export const KEY_PARAMETER = "key";

/**
 * The session cookie's name: cookies are kept per host, not per port, so a name of its own per
 * port keeps two local stacks (or a stack and a test) from overwriting each other's.
 */
export function demoCookieName(port: number): string {
  return `settings_demo_${port}`;
}

function cookieValue(request: Request, name: string): string | null {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return null;
}

export function startSettingsPage(options: SettingsPageOptions): SettingsPage {
  if (options.controlToken.length < 16) {
    throw new Error("startSettingsPage: controlToken must be at least 16 characters");
  }
  const hostname = options.hostname ?? "127.0.0.1";
  // What the cookie holds: not the control token itself, which the browser would then also send
  // to the other local servers on this host (a cookie ignores ports).
  const sessionKey = newControlToken();
  const functionsOrigin = new URL(options.supabaseUrl).origin;
  const config = {
    supabaseUrl: options.supabaseUrl,
    anonKey: options.anonKey,
    defaultMallId: options.defaultMallId ?? "",
    scopes: options.scopes ?? [],
  };
  // In the HTML's JSON block: `<` escaped so that no value can end the script element.
  const configJson = JSON.stringify(config).replaceAll("<", "\\u003c");
  const securityHeaders = {
    // Scripts from this origin only; requests to this origin and the functions, nothing else.
    "Content-Security-Policy": [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'unsafe-inline'",
      `connect-src 'self' ${functionsOrigin}`,
      "base-uri 'none'",
      "form-action 'self'",
      "frame-ancestors 'none'",
    ].join("; "),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
  };

  let origin = "";
  let cookieName = "";
  let hosts: ReadonlySet<string> = new Set();
  const handler = async (request: Request): Promise<Response> => {
    const refused = misdirected(request, hosts);
    if (refused !== null) return refused;
    const url = new URL(request.url);
    const served = FILES[url.pathname];
    if (served !== undefined && (request.method === "GET" || request.method === "HEAD")) {
      let body = await Deno.readTextFile(new URL(served.file, import.meta.url));
      if (served.file === "index.html") {
        body = body.replace(CONFIG_BLOCK, (_all, open, close) => `${open}${configJson}${close}`);
      }
      return new Response(request.method === "HEAD" ? null : body, {
        headers: { ...securityHeaders, "Content-Type": served.type },
      });
    }
    if (url.pathname === "/demo-users" && request.method === "GET") {
      return Response.json(
        options.demoUsers.map(({ key, label }) => ({ key, label })),
        { headers: securityHeaders },
      );
    }
    if (url.pathname === "/demo-key" && request.method === "POST") {
      if (request.headers.get("origin") !== origin) {
        return Response.json({ error: "FORBIDDEN" }, { status: 403, headers: securityHeaders });
      }
      const body = await request.json().catch(() => null) as { key?: unknown } | null;
      if (typeof body?.key !== "string" || !secretsMatch(body.key, options.controlToken)) {
        return Response.json({ error: "DEMO_KEY_INVALID" }, {
          status: 403,
          headers: securityHeaders,
        });
      }
      return new Response(null, {
        status: 204,
        headers: {
          ...securityHeaders,
          "Set-Cookie": `${cookieName}=${sessionKey}; Path=/; HttpOnly; SameSite=Strict`,
        },
      });
    }
    if (url.pathname === "/demo-session" && request.method === "POST") {
      // Same-origin only: another site must not be able to sign a visitor in as a demo user.
      if (request.headers.get("origin") !== origin) {
        return Response.json({ error: "FORBIDDEN" }, { status: 403, headers: securityHeaders });
      }
      // And only a browser that opened the page from the stack's link: a local process can forge
      // Origin, not the cookie.
      const presented = cookieValue(request, cookieName);
      if (presented === null || !secretsMatch(presented, sessionKey)) {
        return Response.json({ error: "DEMO_KEY_REQUIRED" }, {
          status: 403,
          headers: securityHeaders,
        });
      }
      const body = await request.json().catch(() => null) as { user?: unknown } | null;
      const user = options.demoUsers.find((u) => u.key === body?.user);
      if (user === undefined) {
        return Response.json({ error: "UNKNOWN_USER" }, { status: 400, headers: securityHeaders });
      }
      const accessToken = await options.mintAccessToken(user, SESSION_TTL_SECONDS);
      return Response.json(demoSession(user, accessToken), { headers: securityHeaders });
    }
    return Response.json({ error: "NOT_FOUND" }, { status: 404, headers: securityHeaders });
  };

  const abort = new AbortController();
  const server = Deno.serve({
    hostname,
    port: options.port ?? SETTINGS_PAGE_PORT,
    signal: abort.signal,
    onListen: () => {},
  }, handler);
  const port = (server.addr as Deno.NetAddr).port;
  const url = settingsPageUrl(hostname, port);
  origin = new URL(url).origin;
  cookieName = demoCookieName(port);
  hosts = allowedHosts(port, [new URL(url).host]);
  return {
    url,
    launchUrl: `${url}#${KEY_PARAMETER}=${encodeURIComponent(options.controlToken)}`,
    origin,
    port,
    async close() {
      abort.abort();
      await server.finished;
    },
  };
}

/** The fields of a supabase-js session the page uses. */
function demoSession(user: DemoUser, accessToken: string) {
  const now = Math.floor(Date.now() / 1000);
  return {
    access_token: accessToken,
    token_type: "bearer",
    expires_in: SESSION_TTL_SECONDS,
    expires_at: now + SESSION_TTL_SECONDS,
    user: { id: user.id, email: user.email },
  };
}
