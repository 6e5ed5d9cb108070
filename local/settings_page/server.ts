/**
 * Serves the reference settings page (index.html + settings.js, as they are: no build step) on its
 * own origin, so that its calls to the functions are real cross-origin requests with CORS, as from
 * an app's own domain. `npm start` runs it on SETTINGS_PAGE_PORT and points CAFE24_APP_RETURN_URL
 * at it; the browser tests run it on any free port.
 *
 * The one thing it adds that a real app does not have: sign-in. The local stack has no Supabase
 * Auth, so `POST /demo-session {"user": key}` answers a session (shaped like supabase-js's) for one
 * of the configured demo users, minted by the local Auth stand-in. It is for this page only:
 * requests from another origin are refused.
 */

export const SETTINGS_PAGE_PORT = 54330;

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
  /** Pre-filled in the form. */
  defaultMallId?: string;
  /** The scopes offered (the app's CAFE24_SCOPES). */
  scopes?: string[];
}

export interface SettingsPage {
  /** The page, e.g. http://127.0.0.1:54330/ — the stack's CAFE24_APP_RETURN_URL. */
  url: string;
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

export function startSettingsPage(options: SettingsPageOptions): SettingsPage {
  const hostname = options.hostname ?? "127.0.0.1";
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
  const handler = async (request: Request): Promise<Response> => {
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
    if (url.pathname === "/demo-session" && request.method === "POST") {
      // Same-origin only: another site must not be able to sign a visitor in as a demo user.
      if (request.headers.get("origin") !== origin) {
        return Response.json({ error: "FORBIDDEN" }, { status: 403, headers: securityHeaders });
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
  return {
    url,
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
