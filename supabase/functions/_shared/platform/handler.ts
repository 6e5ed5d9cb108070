/**
 * The steps every function's handler takes before its own work, each defined once: open the
 * request (CORS, method, body size), load the configuration it needs, and, for the functions a
 * signed-in user calls, verify that user. Each returns either what the handler goes on with or
 * the response that already ends the request.
 */
import { type Config, type EnvName, loadConfig, userAuthSettings } from "./config.ts";
import { configErrorResponse, errorResponse, openRequest } from "./http.ts";
import { countUnauthenticated } from "./log.ts";
import { type AuthenticatedUser, authenticateRequest } from "./user_auth.ts";

export interface OpenedRequest<K extends EnvName> {
  env: Record<string, string | undefined>;
  config: Config<K>;
  /** CORS headers plus the handler's own (e.g. Cache-Control): sent with every answer. */
  headers: Record<string, string>;
}

/**
 * `openRequest`, then `loadConfig(required)`: a preflight, a refused method or body, or a missing
 * or invalid setting (500 naming it, logged) ends the request here.
 */
export function openConfiguredRequest<K extends EnvName>(
  request: Request,
  functionName: string,
  methods: readonly string[],
  required: readonly K[],
  extraHeaders: Record<string, string> = {},
): OpenedRequest<K> | Response {
  const env = Deno.env.toObject();
  const { cors, early } = openRequest(request, env, methods);
  if (early !== null) return early;
  const headers = { ...cors, ...extraHeaders };
  const loaded = loadConfig(env, required);
  if (!loaded.ok) return configErrorResponse(functionName, loaded.code, loaded.names, headers);
  return { env, config: loaded.config, headers };
}

/**
 * The user behind `Authorization: Bearer <access token>`; otherwise 401 UNAUTHORIZED (counted,
 * never logged one by one: a flood of bad tokens must not flood the log), or 500 when the
 * project's publishable key is not configured.
 */
export async function requireSignedInUser(
  request: Request,
  config: Config<"SUPABASE_URL">,
  functionName: string,
  headers: Record<string, string>,
): Promise<AuthenticatedUser | Response> {
  const auth = userAuthSettings(config);
  if ("missing" in auth) {
    return configErrorResponse(functionName, "CONFIG_MISSING", auth.missing, headers);
  }
  const user = await authenticateRequest(request, auth);
  if (user === null) {
    countUnauthenticated(functionName, "invalid_jwt");
    return errorResponse("UNAUTHORIZED", {}, headers);
  }
  return user;
}
