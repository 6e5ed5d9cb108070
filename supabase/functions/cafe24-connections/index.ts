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
import { database } from "../_shared/platform/db.ts";
import { enter } from "../_shared/platform/handler.ts";
import { reportFailure } from "../_shared/platform/failure.ts";
import { bearerToken, errorResponse, jsonResponse } from "../_shared/platform/http.ts";
import { jwtClaimsJson, readConnectionsAsUser } from "./read.ts";

const FUNCTION = "cafe24-connections";

async function handle(request: Request): Promise<Response> {
  const entered = await enter(request, FUNCTION, {
    callers: { GET: ["user"] },
    headers: { "Cache-Control": "no-store" },
  });
  if (entered instanceof Response) return entered;
  const { config, headers, caller: user } = entered;

  try {
    // The payload of the token requireSignedInUser has just accepted: the claims PostgREST would set.
    const connections = await readConnectionsAsUser(
      database(config.SUPABASE_DB_URL),
      jwtClaimsJson(bearerToken(request)!),
    );
    return jsonResponse({ connections }, 200, headers);
  } catch (error) {
    const failure = reportFailure("cafe24_connections_read_failed", error, {
      fields: { user_id: user.userId },
    });
    return errorResponse(failure, {}, headers);
  }
}

export default { fetch: handle } satisfies Deno.ServeDefaultExport;
