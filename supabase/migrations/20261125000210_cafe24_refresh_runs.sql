-- Refresh runs: one row per run, holding what it covers (its scope) and what it did (its
-- summary). The run's id is also the id of every lease it takes (connections.lease_id), and every
-- claim, count and settle of the run reads the scope from this row: it is written once, when the
-- run starts, and never sent again.

create table if not exists cafe24_private.refresh_runs (
  id uuid primary key default gen_random_uuid(),
  trigger text not null check (trigger in ('cron', 'manual', 'user', 'cli')),
  mode text not null check (mode in ('sync', 'async')),
  status text not null default 'running'
    check (status in ('running', 'finished', 'failed', 'abandoned')),
  -- The database's clock at the start. Every due, lease and backoff comparison of the run is made
  -- at this instant, so a run only ever claims what its census counted.
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  summary jsonb,
  -- The scope. Null only in rows written by hand (e.g. by tests of the history cleanup).
  -- Refresh access tokens this long before they expire.
  refresh_margin interval,
  -- Refresh connections that are not due too (leases, backoff and reconnect_required still hold).
  force boolean not null default false,
  -- Only this mall's or this user's connections (null: every connection).
  mall_id text,
  user_id uuid,
  -- eager: keep every access token fresh. keep_alive: refresh only what keeps refresh tokens
  -- alive, plus connections whose token the app asked for recently, plus unknown expiries.
  policy text not null default 'eager' check (policy in ('eager', 'keep_alive')),
  -- keep_alive: refresh a connection whose refresh token expires within this long ...
  keep_alive_window interval,
  -- ... or whose token was asked for within this long.
  token_request_window interval,
  -- How long a claim holds a connection: longer than a token request may take, so that no other
  -- run sends the same refresh token while an answer may still arrive.
  lease_duration interval
);

create index if not exists refresh_runs_started_at_idx on cafe24_private.refresh_runs (started_at desc);

-- Records a run and its scope; returns its id. Called with named arguments.
create or replace function cafe24_private.start_refresh_run(
  p_trigger text,
  p_mode text,
  p_refresh_margin interval,
  p_lease_duration interval,
  p_force boolean default false,
  p_mall_id text default null,
  p_user_id uuid default null,
  p_policy text default 'eager',
  p_keep_alive_window interval default null,
  p_token_request_window interval default null
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
begin
  if p_refresh_margin is null or p_lease_duration is null
    or (p_policy = 'keep_alive' and (p_keep_alive_window is null or p_token_request_window is null))
  then
    raise exception 'start_refresh_run: a refresh margin, a lease duration and, for keep_alive, both windows are required'
      using errcode = '22023';
  end if;
  insert into cafe24_private.refresh_runs (
    trigger, mode, refresh_margin, lease_duration, force, mall_id, user_id, policy,
    keep_alive_window, token_request_window
  ) values (
    p_trigger, p_mode, p_refresh_margin, p_lease_duration, coalesce(p_force, false), p_mall_id,
    p_user_id, p_policy, p_keep_alive_window, p_token_request_window
  )
  returning id into v_id;
  return v_id;
end
$$;

create or replace function cafe24_private.finish_refresh_run(
  p_run_id uuid,
  p_status text,
  p_summary jsonb
)
returns void
language sql
set search_path = ''
as $$
  update cafe24_private.refresh_runs
  set status = p_status, summary = p_summary, finished_at = now()
  where id = p_run_id
$$;

revoke all on all tables in schema cafe24_private from public, anon, authenticated;
revoke all on all functions in schema cafe24_private from public, anon, authenticated;
grant select on all tables in schema cafe24_private to service_role;
