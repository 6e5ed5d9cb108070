/**
 * Every token value the tests' database ever held: a test-only trigger copies each access and
 * refresh token written to auth_settings.providers.cafe24 or parked in pending_connections into a
 * table, so a test can assert that none of them ever reached a place it must not (a webhook body,
 * a log line, an answer). Only for the throwaway test database.
 */
import type { TestDatabase } from "../../local/postgres/database.ts";

export async function recordTokensSeen(db: TestDatabase): Promise<() => Promise<string[]>> {
  await db.sql.unsafe(`
    create table if not exists public.test_tokens_seen (value text primary key);
    create or replace function public.test_record_tokens(p_entry jsonb) returns void
    language sql as $$
      insert into public.test_tokens_seen (value)
      select v from (values (p_entry ->> 'access_token'), (p_entry ->> 'refresh_token')) t (v)
      where v is not null and v <> ''
      on conflict do nothing
    $$;
    create or replace function public.test_tokens_from_settings() returns trigger
    language plpgsql as $$
    begin
      if jsonb_typeof(new.providers -> 'cafe24') = 'object' then
        perform public.test_record_tokens(new.providers -> 'cafe24');
      end if;
      return null;
    end $$;
    create or replace function public.test_tokens_from_pending() returns trigger
    language plpgsql as $$
    begin
      perform public.test_record_tokens(new.tokens);
      return null;
    end $$;
    drop trigger if exists test_tokens_seen on public.auth_settings;
    create trigger test_tokens_seen after insert or update on public.auth_settings
      for each row execute function public.test_tokens_from_settings();
    drop trigger if exists test_tokens_seen on cafe24_private.pending_connections;
    create trigger test_tokens_seen after insert on cafe24_private.pending_connections
      for each row execute function public.test_tokens_from_pending();
  `).simple();
  return async () =>
    (await db.sql<{ value: string }[]>`select value from public.test_tokens_seen`).map((r) =>
      r.value
    );
}
