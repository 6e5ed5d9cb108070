import type { Env } from "./config.ts";
import { bearerToken, secretsMatch } from "./secrets.ts";

/**
 * The project's secret API key as a caller's credential: the app's own backend (or an operator)
 * acting for every user. Accepted in `apikey` or `Authorization: Bearer`, as supabase-js sends
 * it. What counts as the secret key:
 *   - any value of SUPABASE_SECRET_KEYS (JSON `{"default":"sb_secret_…", …}`; every key the
 *     project has, so a rotation can overlap);
 *   - SUPABASE_SERVICE_ROLE_KEY, the legacy service_role JWT, unless
 *     CAFE24_ACCEPT_SERVICE_ROLE_KEY=false (projects that have moved to the new keys can close it).
 * CRON_SECRET never counts, not even if someone set it to one of those values: it also lives in
 * Vault and pg_net's queue, which more roles can read.
 * Every presented value is compared with every key in constant time, without stopping early.
 */
export function presentsSecretApiKey(request: Request, config: Env): boolean {
  const presented = [request.headers.get("apikey"), bearerToken(request)]
    .filter((value): value is string => value !== null && value !== "");
  if (presented.length === 0) return false;
  const keys = secretApiKeys(config);
  let matched = false;
  for (const value of presented) {
    for (const key of keys) matched = secretsMatch(value, key) || matched;
  }
  return matched;
}

/** The values accepted as the project's secret key under `config` (see presentsSecretApiKey). */
export function secretApiKeys(config: Env): string[] {
  const keys = keysFromJson(config.SUPABASE_SECRET_KEYS);
  if (config.CAFE24_ACCEPT_SERVICE_ROLE_KEY && config.SUPABASE_SERVICE_ROLE_KEY !== undefined) {
    keys.push(config.SUPABASE_SERVICE_ROLE_KEY);
  }
  const cronSecret = config.CRON_SECRET;
  return keys.filter((key) => key !== "" && !(cronSecret && secretsMatch(key, cronSecret)));
}

function keysFromJson(json: string | undefined): string[] {
  if (json === undefined) return [];
  try {
    const parsed: unknown = JSON.parse(json);
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return [];
    return Object.values(parsed).filter((key): key is string => typeof key === "string");
  } catch {
    return [];
  }
}
