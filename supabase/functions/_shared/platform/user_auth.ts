import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import type { UserAuthSettings } from "./config.ts";
import { bearerToken } from "./http.ts";

/**
 * Verifies a Supabase user's access token in code, with supabase-js `auth.getClaims(jwt)`: the
 * signature is checked locally against the project's JWKS
 * (`{SUPABASE_URL}/auth/v1/.well-known/jwks.json`, fetched once and cached), and expired tokens
 * are rejected. On top of that a user must have `role = authenticated`, an `authenticated`
 * audience and a uuid `sub`.
 *
 * Only asymmetric tokens (ES256, RS256, with a `kid`) are accepted. getClaims would verify any
 * other token (HS256 from the legacy JWT secret, or a `kid` missing from the JWKS) by calling
 * Auth's /user endpoint instead, one network call per request that any caller could trigger at
 * will. Such tokens are refused here before getClaims sees them, and the client's fetch reaches
 * the JWKS and nothing else, so no token ever leaves this function.
 */

export interface AuthenticatedUser {
  /** `sub`: the user's id, lowercase. */
  id: string;
}

const ACCEPTED_ALGORITHMS = new Set(["ES256", "RS256"]);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const MAX_JWT_LENGTH = 16 * 1024;
const JWKS_TIMEOUT_MS = 5_000;

/** True when `token` has the shape of a JWT (three base64url parts), whatever it says. */
export function looksLikeJwt(token: string): boolean {
  return token.length <= MAX_JWT_LENGTH && JWT_SHAPE.test(token);
}

/** The verified user, or null for any token that is not a valid user access token. */
export async function verifyUserJwt(
  jwt: string,
  settings: UserAuthSettings,
): Promise<AuthenticatedUser | null> {
  if (!looksLikeJwt(jwt)) return null;
  const header = decodeHeader(jwt);
  if (
    header === null || typeof header.alg !== "string" || !ACCEPTED_ALGORITHMS.has(header.alg) ||
    typeof header.kid !== "string" || header.kid === ""
  ) {
    return null;
  }

  let claims: Record<string, unknown>;
  try {
    const { data, error } = await authClient(settings).auth.getClaims(jwt);
    if (error !== null || data === null) return null;
    claims = data.claims as Record<string, unknown>;
  } catch {
    // A key of the wrong type, an unreadable payload, an unreachable JWKS: not a verified user.
    return null;
  }

  const { sub, role, aud, is_anonymous: anonymous } = claims;
  const audiences = Array.isArray(aud) ? aud : [aud];
  // An anonymous Supabase session (role authenticated, is_anonymous true) is a throwaway account:
  // every per-user bound here (open states, pending connections, the refresh throttle) would be
  // per throwaway, and a mall connected by one would belong to nobody who can sign in again.
  if (
    role !== "authenticated" || !audiences.includes("authenticated") ||
    typeof sub !== "string" || !UUID.test(sub) || anonymous === true
  ) {
    return null;
  }
  return { id: sub.toLowerCase() };
}

function decodeHeader(jwt: string): Record<string, unknown> | null {
  try {
    const part = jwt.slice(0, jwt.indexOf("."));
    const json = atob(part.replaceAll("-", "+").replaceAll("_", "/"));
    const header: unknown = JSON.parse(json);
    return header !== null && typeof header === "object" && !Array.isArray(header)
      ? header as Record<string, unknown>
      : null;
  } catch {
    return null;
  }
}

const clients = new Map<string, SupabaseClient>();

/** One client per project and key, kept at module scope so its JWKS cache survives requests. */
function authClient(settings: UserAuthSettings): SupabaseClient {
  const cacheKey = `${settings.supabaseUrl}\n${settings.apiKey}`;
  let client = clients.get(cacheKey);
  if (client === undefined) {
    client = createClient(settings.supabaseUrl, settings.apiKey, {
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
      global: { fetch: jwksOnlyFetch(jwksUrl(settings.supabaseUrl)) },
    });
    clients.set(cacheKey, client);
  }
  return client;
}

export function jwksUrl(supabaseUrl: string): string {
  return new URL("auth/v1/.well-known/jwks.json", supabaseUrl.replace(/\/?$/, "/")).href;
}

/**
 * The client's only way out: GET of the JWKS. Anything else (getClaims' fallback to Auth's /user
 * endpoint) is answered here with 401, so it fails closed without sending the token anywhere.
 * getClaims also refetches the JWKS for every token whose `kid` it does not know; a successful
 * JWKS is therefore reused for JWKS_REFETCH_COOLDOWN_MS, so made-up kids cannot turn each
 * request into a fetch. (Supabase publishes a rotated key as a standby before signing with it.)
 */
const JWKS_REFETCH_COOLDOWN_MS = 30_000;

function jwksOnlyFetch(url: string): typeof fetch {
  let cached: { atMs: number; body: string } | null = null;
  return async (input, init) => {
    const request = new Request(input, init);
    if (request.method !== "GET" || request.url !== url) {
      return Response.json({ code: 401, error_code: "bad_jwt", msg: "not verified" }, {
        status: 401,
      });
    }
    if (cached === null || Date.now() - cached.atMs >= JWKS_REFETCH_COOLDOWN_MS) {
      const response = await fetch(request, {
        signal: AbortSignal.timeout(JWKS_TIMEOUT_MS),
        redirect: "error",
      });
      if (!response.ok) return response;
      cached = { atMs: Date.now(), body: await response.text() };
    }
    return new Response(cached.body, { headers: { "Content-Type": "application/json" } });
  };
}

/** The user behind `Authorization: Bearer <access token>`, or null. */
export function authenticateRequest(
  request: Request,
  settings: UserAuthSettings,
): Promise<AuthenticatedUser | null> {
  const token = bearerToken(request);
  return token === null ? Promise.resolve(null) : verifyUserJwt(token, settings);
}
