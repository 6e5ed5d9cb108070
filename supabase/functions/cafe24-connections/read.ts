import type postgres from "postgres";
import { fromBase64url } from "../_shared/platform/base64url.ts";

/**
 * The claims of a JWT that has already been verified, as the JSON text PostgREST puts in
 * `request.jwt.claims`. Only for verified tokens: nothing here checks a signature.
 */
export function jwtClaimsJson(verifiedJwt: string): string {
  const payload = verifiedJwt.split(".")[1] ?? "";
  return JSON.stringify(JSON.parse(new TextDecoder().decode(fromBase64url(payload))));
}

/**
 * `select * from public.cafe24_connections` as the Data API runs it for a browser: one
 * transaction, role `authenticated`, the caller's claims set locally (both end with the
 * transaction, so a pooled connection goes back as it came). The view's `auth.uid()` filter picks
 * the rows; sorting by mall is the only addition.
 */
export async function readConnectionsAsUser(
  sql: postgres.Sql,
  claimsJson: string,
): Promise<Record<string, unknown>[]> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('request.jwt.claims', ${claimsJson}, true)`;
    await tx`set local role authenticated`;
    const rows = await tx<Record<string, unknown>[]>`
      select * from public.cafe24_connections order by mall_id nulls last, auth_settings_id`;
    return [...rows];
  });
}
