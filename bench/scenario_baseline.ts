/** The baseline: the seed's approach, measured against the same sandbox and database. */
import type postgres from "postgres";
import type { Cafe24Sandbox } from "../local/cafe24_sandbox.ts";
import type { TestDatabase } from "../local/postgres/database.ts";
import { mallApiUrl } from "../supabase/functions/_shared/cafe24/mall_id.ts";
import { CLIENT_ID, CLIENT_SECRET, type TlsMaterial } from "./setup.ts";

export interface BaselineMeasurement {
  n: number;
  wallMs: number;
  refreshed: number;
  failed: number;
  statements: number;
}

/**
 * THE BASELINE, as the seed's /api/cafe24/refresh did it (shared/seed): read every auth_settings
 * row at once, then for each row with providers.cafe24.mall_id and refresh_token, one after
 * another: POST the refresh grant, read access_token / refresh_token / expires_at, and write the
 * whole providers document back. The seed went through supabase-js and PostgREST; this talks SQL
 * directly, which only makes the baseline faster.
 */
async function seedApproachBaseline(
  sql: postgres.Sql,
  apiBaseUrl: string,
  fetchFn: typeof fetch,
): Promise<{ refreshed: number; failed: number; statements: number }> {
  let statements = 1;
  // The app's own read of its rows and their pairs, which live in the private row now: the
  // document it writes back carries them into providers, and the sync trigger moves them.
  const rows = await sql<{ id: string; providers: Record<string, unknown> | null }[]>`
    select s.id, s.org_id, s.user_id,
      case when jsonb_typeof(s.providers -> 'cafe24') = 'object'
        then jsonb_set(s.providers, '{cafe24}', (s.providers -> 'cafe24')
          || jsonb_strip_nulls(jsonb_build_object('refresh_token', c.refresh_token,
            'access_token', c.access_token)))
        else s.providers end as providers
    from public.auth_settings s
    left join cafe24_private.connections c on c.auth_settings_id = s.id`;
  let refreshed = 0;
  let failed = 0;
  const basic = btoa(`${CLIENT_ID}:${CLIENT_SECRET}`);
  for (const row of rows) {
    const cafe24 = row.providers?.cafe24 as Record<string, unknown> | undefined;
    if (typeof cafe24?.mall_id !== "string" || typeof cafe24.refresh_token !== "string") continue;
    try {
      const response = await fetchFn(mallApiUrl(apiBaseUrl, cafe24.mall_id, "api/v2/oauth/token"), {
        method: "POST",
        headers: {
          "Authorization": `Basic ${basic}`,
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: cafe24.refresh_token,
        }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const providers = {
        ...row.providers,
        cafe24: {
          ...cafe24,
          access_token: body.access_token,
          refresh_token: body.refresh_token,
          expires_at: body.expires_at,
        },
      };
      statements++;
      await sql`
        update public.auth_settings
        set providers = ${sql.json(providers as postgres.JSONValue)}, updated_at = now()
        where id = ${row.id}`;
      refreshed++;
    } catch {
      failed++;
    }
  }
  return { refreshed, failed, statements };
}

export async function measureBaseline(
  db: TestDatabase,
  sandbox: Cafe24Sandbox,
  tls: TlsMaterial | null,
  n: number,
): Promise<BaselineMeasurement> {
  const client = tls === null ? null : Deno.createHttpClient({ caCerts: [tls.caPem] });
  const fetchFn: typeof fetch = client === null
    ? fetch
    : (input, init) => fetch(input, { ...init, client });
  try {
    sandbox.resetCounters();
    const t0 = performance.now();
    const result = await seedApproachBaseline(db.sql, sandbox.baseUrlTemplate, fetchFn);
    return { n, wallMs: performance.now() - t0, ...result };
  } finally {
    client?.close();
  }
}
