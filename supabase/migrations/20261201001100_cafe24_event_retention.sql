-- Connection events are kept for 90 days, delivered or not. Without a bound the outbox grew with
-- every connect, takeover and disconnect, forever. The history stays append-only for everyone else:
-- the trigger refuses every update, and every delete except the trim's own, which it marks with a
-- transaction-local setting.

create or replace function cafe24_private.connection_event_retention()
returns interval
language sql
immutable
set search_path = ''
as $$ select interval '90 days' $$;

create or replace function cafe24_private.refuse_event_rewrite()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE'
    and current_setting('cafe24_private.trimming_events', true) = 'on'
    and old.occurred_at < now() - cafe24_private.connection_event_retention()
  then
    return old;
  end if;
  raise exception 'cafe24_private.connection_events is append-only'
    using errcode = '42501';
end
$$;

-- Deletes events older than connection_event_retention() (and their delivery rows), oldest
-- first, at most p_limit per call; returns how many went. Scheduled daily below.
create or replace function cafe24_private.trim_connection_events(p_limit integer default 10000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids bigint[];
begin
  select coalesce(array_agg(e.id), '{}') into v_ids from (
    select id from cafe24_private.connection_events
    where occurred_at < now() - cafe24_private.connection_event_retention()
    order by id
    limit greatest(p_limit, 0)
  ) e;
  perform set_config('cafe24_private.trimming_events', 'on', true);
  delete from cafe24_private.connection_event_deliveries where event_id = any(v_ids);
  delete from cafe24_private.connection_events where id = any(v_ids);
  perform set_config('cafe24_private.trimming_events', 'off', true);
  return coalesce(array_length(v_ids, 1), 0);
end
$$;

revoke all on function cafe24_private.connection_event_retention() from public, anon, authenticated;
revoke all on function cafe24_private.trim_connection_events(integer)
  from public, anon, authenticated;

do $$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron') then
    perform cron.schedule('cafe24-trim-events', '23 3 * * *',
      'select cafe24_private.trim_connection_events()');
  else
    raise notice 'pg_cron is not installed: connection events will not be trimmed on a schedule';
  end if;
end
$$;
