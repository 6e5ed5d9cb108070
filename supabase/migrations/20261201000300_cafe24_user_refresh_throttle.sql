-- "Refresh now" from a signed-in user: at most one start per user per interval, counted here so
-- that the limit holds across every function instance (each Edge Function invocation may run in
-- a different worker, so a counter in memory would limit nothing). Cron and admin callers do not
-- pass through this.

create table if not exists cafe24_private.user_refresh_starts (
  user_id uuid primary key,
  last_started_at timestamptz not null
);

comment on table cafe24_private.user_refresh_starts is
  'When each signed-in user last started a refresh through cafe24-refresh; one row per user, written only by start_user_refresh().';

-- Checks and records in one statement: the row is inserted, or moved to now() only if the last
-- start is at least p_interval old. Two concurrent calls for one user serialize on the row
-- (ON CONFLICT locks it), so exactly one of them is allowed. A refused call returns how many
-- whole seconds remain, at least 1, for the Retry-After header.
create or replace function cafe24_private.start_user_refresh(p_user_id uuid, p_interval interval)
returns table (allowed boolean, retry_after_seconds integer)
language plpgsql
set search_path = ''
as $$
declare
  v_last_started_at timestamptz;
begin
  insert into cafe24_private.user_refresh_starts as s (user_id, last_started_at)
  values (p_user_id, now())
  on conflict (user_id) do update set last_started_at = excluded.last_started_at
    where s.last_started_at <= excluded.last_started_at - p_interval
  returning s.last_started_at into v_last_started_at;
  if found then
    return query select true, 0;
    return;
  end if;

  -- Refused: the row is locked by the statement above, and this statement's snapshot is newer,
  -- so it sees the start that won even if that one committed a moment ago.
  select s.last_started_at into v_last_started_at
  from cafe24_private.user_refresh_starts s
  where s.user_id = p_user_id;
  return query select false,
    greatest(1, ceil(extract(epoch from v_last_started_at + p_interval - now())))::integer;
end
$$;

revoke all on table cafe24_private.user_refresh_starts from public, anon, authenticated;
grant select on table cafe24_private.user_refresh_starts to service_role;
revoke all on function cafe24_private.start_user_refresh(uuid, interval)
  from public, anon, authenticated;
grant execute on function cafe24_private.start_user_refresh(uuid, interval) to service_role;
