/**
 * cafe24-connections: the signed-in user's rows of `public.cafe24_connections`, for stacks without
 * the Data API (the local one). On a Supabase project the app reads the same rows with
 * `supabase.from("cafe24_connections").select()`; this function answers them the same way.
 *   GET /functions/v1/cafe24-connections
 *   Authorization: Bearer <the user's Supabase access token>
 * → 200 {"connections": [...]} (never a token: the view has none).
 *
 * The rows are read exactly as the Data API reads them: in a transaction, as the `authenticated`
 * role, with the verified JWT claims in `request.jwt.claims`. The view's own `auth.uid()` filter is
 * therefore what limits the rows to the caller's; nothing here filters a second time, so this
 * function can never show more or less than the app would see through the Data API.
 * verify_jwt is off in config.toml for the same reason as cafe24-authorize: every answer, 401
 * included, carries CORS headers and this project's error body.
 */
import {
  loadConfig,
  USER_AUTH_CONFIG_REQUIRED,
  userAuthSettings,
} from "../_shared/platform/config.ts";
import { database } from "../_shared/platform/db.ts";
import {
  bearerToken,
  configErrorResponse,
  errorResponse,
  jsonResponse,
  openRequest,
} from "../_shared/platform/http.ts";
import { countUnauthenticated, logEvent } from "../_shared/platform/log.ts";
import { verifyUserJwt } from "../_shared/platform/user_auth.ts";
import { jwtClaimsJson, readConnectionsAsUser } from "./read.ts";

const FUNCTION = "cafe24-connections";
const REQUIRED = [...USER_AUTH_CONFIG_REQUIRED, "SUPABASE_DB_URL"] as const;

async function handle(request: Request): Promise<Response> {
  const env = Deno.env.toObject();
  const { cors, early } = openRequest(request, env, ["GET"]);
  if (early !== null) return early;

  const loaded = loadConfig(env, REQUIRED);
  if (!loaded.ok) return configErrorResponse(FUNCTION, loaded.code, loaded.names, cors);
  const auth = userAuthSettings(loaded.config);
  if ("missing" in auth) return configErrorResponse(FUNCTION, "CONFIG_MISSING", auth.missing, cors);

  const jwt = bearerToken(request);
  const user = jwt === null ? null : await verifyUserJwt(jwt, auth);
  if (jwt === null || user === null) {
    countUnauthenticated(FUNCTION, "invalid_jwt");
    return errorResponse("UNAUTHORIZED", {}, cors);
  }

  try {
    // The payload of a token verifyUserJwt has just accepted: the claims PostgREST would set.
    const connections = await readConnectionsAsUser(
      database(loaded.config.SUPABASE_DB_URL),
      jwtClaimsJson(jwt),
    );
    return jsonResponse({ connections }, 200, { ...cors, "Cache-Control": "no-store" });
  } catch {
    logEvent("error", "cafe24_connections_read_failed", { user_id: user.id });
    return errorResponse("DATABASE_UNAVAILABLE", {}, cors);
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
