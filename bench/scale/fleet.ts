/**
 * The fleet under test and time compressed for it. Every real duration of the refresh cycle is
 * divided by the compression factor C: the Cafe24 sandbox issues access tokens for 2 h / C, the
 * function refreshes them 30 min / C before they expire, and the schedule's early window, minimum
 * token age and first-due spread shrink alike. A mall is then refreshed C times as often, so a
 * local fleet of N malls makes the refresh traffic of a fleet of about N × C malls with 2-hour
 * tokens (the report states the measured equivalent: refreshes per second × 5,400 s, one refresh
 * per mall every 90 minutes). pg_cron's tick cannot be compressed: it stays one minute, as the
 * schedule's default on Supabase, so each tick carries the same work as at full scale.
 */
import type { Cafe24Sandbox } from "../../local/cafe24_sandbox.ts";
import type { TestDatabase } from "../../local/postgres/database.ts";

const HOUR_MS = 60 * 60_000;

/** Cafe24's 2-hour access tokens refreshed 30 minutes early: one refresh per 90 minutes. */
export const REAL_ACCESS_TOKEN_LIFETIME_MS = 2 * HOUR_MS;
export const REAL_REFRESH_MARGIN_S = 30 * 60;
export const REAL_REFRESH_INTERVAL_S = 90 * 60;

export interface Compressed {
  factor: number;
  accessTokenLifetimeMs: number;
  refreshMarginS: number;
  /** The schedule's windows, as SQL intervals. */
  earlyWindow: string;
  earlyMinTokenAge: string;
  firstDueSpread: string;
}

/** The schedule's defaults (cafe24_private.refresh_schedule_settings, in
 * supabase/schemas/50_schedule_and_project_calls.sql), divided by the factor. */
export function compressed(factor: number): Compressed {
  const seconds = (realSeconds: number) => `${Math.round(realSeconds / factor)} seconds`;
  return {
    factor,
    accessTokenLifetimeMs: Math.round(REAL_ACCESS_TOKEN_LIFETIME_MS / factor),
    refreshMarginS: Math.max(60, Math.round(REAL_REFRESH_MARGIN_S / factor)),
    earlyWindow: seconds(45 * 60),
    earlyMinTokenAge: seconds(30 * 60),
    firstDueSpread: seconds(60 * 60),
  };
}

export const mallId = (prefix: string, i: number) => `${prefix}${String(i).padStart(6, "0")}`;

/** Cafe24's Korea-time `expires_at` (no offset) as an instant. */
const kstToIso = (kst: string) => new Date(`${kst}+09:00`).toISOString();

/**
 * Connects malls prefix{from}…prefix{to - 1} at once through the connect flow's own SQL
 * (cafe24_private.store_connection, as cafe24-callback completes a connection), with fresh
 * tokens from the sandbox: all of them at the same moment, each for its own new user.
 */
export async function massConnect(
  db: TestDatabase,
  sandbox: Cafe24Sandbox,
  prefix: string,
  from: number,
  to: number,
): Promise<void> {
  const malls: string[] = [];
  const access: string[] = [];
  const refresh: string[] = [];
  const expires: string[] = [];
  const refreshExpires: string[] = [];
  for (let i = from; i < to; i++) {
    const mall = mallId(prefix, i);
    const tokens = sandbox.issueTokens(mall);
    malls.push(mall);
    access.push(tokens.accessToken);
    refresh.push(tokens.refreshToken);
    expires.push(kstToIso(tokens.expiresAt));
    refreshExpires.push(kstToIso(tokens.refreshTokenExpiresAt));
  }
  await db.sql`
    select cafe24_private.store_connection(gen_random_uuid(), m.mall, jsonb_build_object(
      'access_token', m.access_token, 'refresh_token', m.refresh_token,
      'expires_at', m.expires_at, 'refresh_token_expires_at', m.refresh_expires_at))
    from unnest(${malls}::text[], ${access}::text[], ${refresh}::text[], ${expires}::text[],
      ${refreshExpires}::text[]) as m(mall, access_token, refresh_token, expires_at,
        refresh_expires_at)`;
}

/**
 * Records every access token that expired while its connection was active: when a refresh
 * replaces an expiry that has already passed. Bench-only (its own schema in the throwaway
 * database); with expiredNow() it counts what must stay 0.
 */
export async function watchExpiries(db: TestDatabase): Promise<void> {
  await db.sql.unsafe(`
    create schema if not exists bench;
    create table if not exists bench.expired_while_active (
      auth_settings_id uuid not null,
      expired_at timestamptz not null,
      replaced_at timestamptz not null default now()
    );
    create or replace function bench.note_expired() returns trigger language plpgsql as $$
    begin
      if old.row_state = 'ok' and old.status = 'active' and old.access_expires_at < now()
        and new.access_expires_at is distinct from old.access_expires_at then
        insert into bench.expired_while_active (auth_settings_id, expired_at)
        values (old.auth_settings_id, old.access_expires_at);
      end if;
      return new;
    end $$;
    drop trigger if exists note_expired on cafe24_private.connections;
    create trigger note_expired before update of access_expires_at on cafe24_private.connections
      for each row execute function bench.note_expired();
  `).simple();
}

export interface Expiries {
  /** Tokens replaced after they had expired. */
  replacedAfterExpiry: number;
  /** Active connections whose token has expired and is not replaced yet. */
  expiredNow: number;
  /** The longest any of them was (or is) expired, seconds. */
  longestS: number;
}

export async function countExpiries(db: TestDatabase, since: Date): Promise<Expiries> {
  const [row] = await db.sql<{ replaced: number; now_expired: number; longest: number | null }[]>`
    select
      (select count(*)::int from bench.expired_while_active where replaced_at >= ${since})
        as replaced,
      (select count(*)::int from cafe24_private.connections
        where row_state = 'ok' and status = 'active' and access_expires_at < now()) as now_expired,
      greatest(
        (select max(extract(epoch from replaced_at - expired_at)) from bench.expired_while_active
          where replaced_at >= ${since}),
        (select max(extract(epoch from now() - access_expires_at)) from cafe24_private.connections
          where row_state = 'ok' and status = 'active' and access_expires_at < now()))::float8
        as longest`;
  return {
    replacedAfterExpiry: row!.replaced,
    expiredNow: row!.now_expired,
    longestS: row!.longest ?? 0,
  };
}
