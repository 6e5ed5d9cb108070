-- Refresh runs and settling what they claimed.
--
-- A run is one row holding what it covers (its scope) and what it did (its summary). The run's id
-- is also the id of every lease it takes (connections.lease_id), and every claim, count and
-- settle of the run reads the scope from this row: it is written once, when the run starts, and
-- never sent again. Settling a claimed connection stores the pair Cafe24 returned, or records why
-- there is none; either call can claim the run's next connection in the same round trip.

-- ---------------------------------------------------------------------------------------------
-- Runs
-- ---------------------------------------------------------------------------------------------

create table cafe24_private.refresh_runs (
  id uuid primary key default gen_random_uuid(),
  -- 'token': a run started to hand out one connection's token (cafe24-token, 80_token.sql).
  trigger text not null check (trigger in ('cron', 'manual', 'user', 'cli', 'token')),
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
  lease_duration interval,
  -- The schedule's tick (refresh_ticks) that started this cron run.
  tick_id bigint,
  -- The run's place among its tick's runs (0 = first). Only the first counts every connection
  -- for its census; the others count what their tick's horizon covers.
  tick_slot integer,
  -- Cron runs also refresh what comes due before the next tick.
  due_lookahead interval,
  -- Early refreshes granted by the tick (eager only): connections due this much after the
  -- run's horizon whose pair is at least early_min_token_age old. A forced run with an
  -- early_min_token_age (a user's refresh now) refreshes what is due and every pair at least
  -- that old, whatever its due time (make_scope).
  early_window interval,
  early_min_token_age interval,
  -- The key ids of the starting function's ring (CAFE24_TOKEN_KEYS): a connection sealed under
  -- another one cannot be opened by it, so the rules skip it (key_unavailable) instead of claiming
  -- it. Null: not told (a run of an earlier release), every connection is claimed as before.
  token_key_ids text[],
  -- The scope made from the columns above (make_scope), once, when the run starts: every claim
  -- reads it as it is instead of making it again. Null in rows of an earlier release, whose scope
  -- scope_of_run makes from the columns.
  scope cafe24_private.refresh_scope
);

create index refresh_runs_started_at_idx on cafe24_private.refresh_runs (started_at desc);

-- Records a run and its scope; returns its id. Called with named arguments. A cron run started
-- by a tick (p_tick_id) takes the tick's lookahead and early window into its scope, and its slot
-- (0 for the first of the tick's runs to start). A forced run given p_min_token_age leaves
-- younger pairs alone (a user's refresh now: USER_FORCE_MIN_TOKEN_AGE_MS).
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
  p_token_request_window interval default null,
  p_tick_id bigint default null,
  p_min_token_age interval default null,
  p_token_key_ids text[] default null
)
returns uuid
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_slot integer;
  v_lookahead interval;
  v_early_window interval;
  v_early_min_token_age interval;
begin
  if p_refresh_margin is null or p_lease_duration is null
    or (p_policy = 'keep_alive' and (p_keep_alive_window is null or p_token_request_window is null))
  then
    raise exception 'start_refresh_run: a refresh margin, a lease duration and, for keep_alive, both windows are required'
      using errcode = '22023';
  end if;
  -- Only a plain scheduled run works for a tick; a tick that has been trimmed is ignored.
  if p_tick_id is not null and p_trigger = 'cron' and not coalesce(p_force, false)
    and p_mall_id is null and p_user_id is null
  then
    update cafe24_private.refresh_ticks t
    set runs_started = t.runs_started + 1
    where t.id = p_tick_id
    returning t.runs_started - 1, t.lookahead, t.early_window, t.early_min_token_age
    into v_slot, v_lookahead, v_early_window, v_early_min_token_age;
  end if;
  insert into cafe24_private.refresh_runs (
    trigger, mode, refresh_margin, lease_duration, force, mall_id, user_id, policy,
    keep_alive_window, token_request_window, tick_id, tick_slot, due_lookahead, early_window,
    early_min_token_age, token_key_ids
  ) values (
    p_trigger, p_mode, p_refresh_margin, p_lease_duration, coalesce(p_force, false), p_mall_id,
    p_user_id, p_policy, p_keep_alive_window, p_token_request_window,
    case when v_slot is not null then p_tick_id end, v_slot, v_lookahead,
    case when p_policy = 'eager' then v_early_window end,
    case
      when coalesce(p_force, false) then p_min_token_age
      when p_policy = 'eager' then v_early_min_token_age
    end,
    p_token_key_ids
  )
  returning id into v_id;
  update cafe24_private.refresh_runs r
  set scope = cafe24_private.scope_of_run(v_id)
  where r.id = v_id;
  return v_id;
end
$$;

-- Records how a run ended and its summary.
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

-- What a scheduled invocation did after its run (the background pass: pending connection
-- attempts swept, rows resealed with the active key), added to the run's stored summary as
-- `background`.
create or replace function cafe24_private.record_background_pass(p_run_id uuid, p_pass jsonb)
returns void
language sql
set search_path = ''
as $$
  update cafe24_private.refresh_runs
  set summary = coalesce(summary, '{}'::jsonb) || jsonb_build_object('background', p_pass)
  where id = p_run_id
$$;

-- ---------------------------------------------------------------------------------------------
-- "Refresh now" from a signed-in user
-- ---------------------------------------------------------------------------------------------

-- At most one start per user per interval, counted here so that the limit holds across every
-- function instance (each Edge Function invocation may run in a different worker, so a counter
-- in memory would limit nothing). Cron and admin callers do not pass through this.
create table cafe24_private.user_refresh_starts (
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

-- ---------------------------------------------------------------------------------------------
-- Settling a claimed connection
-- ---------------------------------------------------------------------------------------------

-- A pair worth storing: non-empty access and refresh tokens and an expiry this project can read.
-- The last line of defence: whatever the caller parsed, SQL never writes a pair that would erase
-- or blank a token. Inlined (no SET clause: it names nothing through search_path) into the
-- statement that stores a pair, instead of being planned as a function of its own on every call.
create or replace function cafe24_private.is_complete_token_pair(p_tokens jsonb)
returns boolean
language sql
stable
as $$
  select jsonb_typeof(p_tokens) = 'object'
    and jsonb_typeof(p_tokens -> 'refresh_token') = 'string'
    and jsonb_typeof(p_tokens -> 'access_token') = 'string'
    and p_tokens ->> 'refresh_token' <> ''
    and p_tokens ->> 'access_token' <> ''
    and cafe24_private.parse_instant(p_tokens -> 'expires_at') is not null
$$;

-- What settling returns: the outcome, and the next connection claimed in the same round trip
-- (all null when none was).
create type cafe24_private.settled_step as (
  outcome text,
  next_auth_settings_id uuid,
  next_mall_id text,
  next_refresh_token text,
  next_consecutive_failures integer,
  next_answer_possibly_lost boolean,
  next_token_version bigint
);

-- Why a refresh failed, as record_refresh_failure takes it.
create type cafe24_private.refresh_failure as (
  -- A code of REFRESH_FAILURES (supabase/functions/_shared/platform/errors.ts).
  code text,
  message text,
  -- No more automatic attempts until the mall reconnects.
  permanent boolean,
  -- The request may have reached Cafe24 (timeout, reset, 5xx, malformed 200), so Cafe24 may
  -- have rotated the token: remembered to explain a later rejection.
  outcome_unknown boolean,
  -- Transient failures: the earliest next attempt.
  next_attempt_at timestamptz
);

-- A settle outcome followed by the run's next claim (when p_claim_next and one is due), as one
-- row; the claim columns are null when nothing was claimed.
create or replace function cafe24_private.with_next_claim(
  p_outcome text,
  p_run_id uuid,
  p_claim_next boolean
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
as $$
begin
  if p_claim_next then
    return query
    select p_outcome, c.*
    from cafe24_private.claim_due_pairs(p_run_id, 1) c;
    if found then
      return;
    end if;
  end if;
  return query select p_outcome, null::uuid, null::text, null::text, null::integer,
    null::boolean, null::bigint;
end
$$;

-- Writes a refreshed pair the moment Cafe24 returns it, into the connection's private row and
-- nowhere else: the hot path is one narrow update that fires no trigger doing work (the events
-- and jitter triggers' WHEN clauses leave a refresh out). Compare-and-swap on the token_version
-- the claim returned: if the row now holds another pair (the owner reconnected or disconnected
-- meanwhile), the newer state stays and the outcome is 'superseded'. The new pair is a new start:
-- failures, backoff and the lease are cleared. The tokens arrive sealed; the copy is
-- p_tokens.plaintext_access_token, which the private row never stores. With p_claim_next, the
-- run's next connection is claimed in the same round trip.
--
-- providers.cafe24 is written only when the answer's scopes differ from the ones it holds (the
-- grant changed), or with p_plaintext_copy (CAFE24_PLAINTEXT_TOKEN_COPY), which also copies the
-- access token and its expiry there, in the same transaction, for apps that read them there;
-- never the refresh token. Every writer of providers locks the auth_settings row before the
-- connection's (the sync trigger), and so must this, so the update is tried in up to two passes:
-- the first, the hot path, only when the answer's scopes are the ones the row mirrors
-- (connections.scopes) and there is no copy to write, touching nothing else; the second after
-- reading providers and, when it must be written, locking its row first.
create or replace function cafe24_private.store_refreshed_tokens(
  p_run_id uuid,
  p_auth_settings_id uuid,
  p_token_version bigint,
  p_tokens jsonb,
  p_claim_next boolean default false,
  p_plaintext_copy boolean default false
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_access_expires_at timestamptz := cafe24_private.parse_instant(p_tokens -> 'expires_at');
  v_refresh_expires_at timestamptz :=
    cafe24_private.parse_instant(p_tokens -> 'refresh_token_expires_at');
  v_second_pass boolean := p_plaintext_copy;
  v_stored boolean;
  v_write_providers boolean := false;
  v_outcome text;
begin
  if not cafe24_private.is_complete_token_pair(p_tokens) then
    raise exception 'store_refreshed_tokens: tokens must carry non-empty access_token, refresh_token and an ISO-8601 expires_at'
      using errcode = '22023';
  end if;

  loop
    if v_second_pass and (p_plaintext_copy or (p_tokens ? 'scopes' and exists (
      select 1 from public.auth_settings s
      where s.id = p_auth_settings_id
        and jsonb_typeof(s.providers -> 'cafe24') = 'object'
        and (s.providers -> 'cafe24' -> 'scopes') is distinct from (p_tokens -> 'scopes')
    ))) then
      perform 1 from public.auth_settings s where s.id = p_auth_settings_id for update;
      v_write_providers := true;
    end if;

    update cafe24_private.connections c
    set access_token = p_tokens ->> 'access_token',
        refresh_token = p_tokens ->> 'refresh_token',
        token_version = c.token_version + 1,
        access_expires_at = v_access_expires_at,
        refresh_expires_at = v_refresh_expires_at,
        due_at = cafe24_private.refresh_due_at(v_access_expires_at, v_refresh_expires_at),
        last_refreshed_at = now(),
        status = 'active',
        consecutive_failures = 0,
        next_attempt_at = null,
        lease_id = null,
        lease_expires_at = null,
        in_flight_since = null,
        answer_possibly_lost_at = null,
        last_error_code = null,
        last_error_message = null,
        last_error_at = null,
        scopes = coalesce(p_tokens -> 'scopes', c.scopes),
        updated_at = now()
    where c.auth_settings_id = p_auth_settings_id
      and c.token_version = p_token_version
      and (v_second_pass or not (p_tokens ? 'scopes')
        or c.scopes is not distinct from (p_tokens -> 'scopes'))
    returning true into v_stored;
    exit when v_stored or v_second_pass;
    v_second_pass := true;
  end loop;

  if v_stored then
    if v_write_providers then
      -- The sync trigger leaves the copy where it is: this write marks itself as the copy.
      perform set_config('cafe24_private.writing_token_copy', 'on', true);
      update public.auth_settings s
      set providers = jsonb_set(s.providers, '{cafe24}', (s.providers -> 'cafe24')
            || case when p_tokens ? 'scopes'
              then jsonb_build_object('scopes', p_tokens -> 'scopes') else '{}'::jsonb end
            || case when p_plaintext_copy
              then jsonb_build_object(
                'access_token', coalesce(p_tokens -> 'plaintext_access_token', p_tokens -> 'access_token'),
                'expires_at', p_tokens -> 'expires_at')
              else '{}'::jsonb end),
          updated_at = now()
      where s.id = p_auth_settings_id
        and jsonb_typeof(s.providers -> 'cafe24') = 'object';
      perform set_config('cafe24_private.writing_token_copy', 'off', true);
    end if;
    v_outcome := 'stored';
  elsif exists (
    -- Already written: this is a retry of a store whose answer the caller never received. Told
    -- by the pair's expiries and the next version, never by the token text (which a
    -- re-encryption may have rewritten meanwhile).
    select 1 from cafe24_private.connections c
    where c.auth_settings_id = p_auth_settings_id
      and c.token_version = p_token_version + 1
      and c.access_expires_at = v_access_expires_at
      and c.refresh_expires_at is not distinct from v_refresh_expires_at
      and c.last_refreshed_at is not null
  ) then
    v_outcome := 'stored';
  else
    -- Not ours to write any more; let go of this run's lease without touching the newer state.
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null, updated_at = now()
    where auth_settings_id = p_auth_settings_id and lease_id = p_run_id;
    v_outcome := 'superseded';
  end if;

  return query select * from cafe24_private.with_next_claim(v_outcome, p_run_id, p_claim_next);
end
$$;

-- The previous release's store_refreshed_tokens, called with the refresh token that was sent:
-- kept while functions of that release may still run (between `db push` and `functions
-- deploy`). Compares the text as that release did, then stores through the version-checked one
-- above, so the pair lands in the private row. Remove once no such function can be running.
create or replace function cafe24_private.store_refreshed_tokens(
  p_run_id uuid,
  p_auth_settings_id uuid,
  p_used_refresh_token text,
  p_tokens jsonb,
  p_claim_next boolean default false
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
as $$
declare
  v_connection cafe24_private.connections%rowtype;
begin
  select * into v_connection
  from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
  for update;
  if v_connection.refresh_token is distinct from p_used_refresh_token
    and v_connection.refresh_token is not distinct from p_tokens ->> 'refresh_token'
  then
    return query select * from cafe24_private.with_next_claim('stored', p_run_id, p_claim_next);
    return;
  end if;
  return query select * from cafe24_private.store_refreshed_tokens(
    p_run_id, p_auth_settings_id,
    case when v_connection.refresh_token = p_used_refresh_token then v_connection.token_version end,
    p_tokens, p_claim_next, false);
end
$$;

-- Records a failed refresh. Never touches the tokens. Compare-and-swap on the token_version the
-- claim returned. Outcomes:
--   'already_rotated'    the row holds another pair now (another worker or a reconnect won):
--                        not a failure of this connection;
--   'lease_lost'         the run's lease ran out and someone else holds the row: nothing
--                        is recorded;
--   'reconnect_required' a permanent failure: no more automatic attempts until the mall
--                        reconnects;
--   'retry_scheduled'    transient: next attempt at the failure's next_attempt_at.
-- With p_claim_next, the run's next connection is claimed in the same round trip.
create or replace function cafe24_private.record_refresh_failure(
  p_run_id uuid,
  p_auth_settings_id uuid,
  p_token_version bigint,
  p_failure cafe24_private.refresh_failure,
  p_claim_next boolean default false
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
as $$
declare
  v_connection cafe24_private.connections%rowtype;
  v_outcome text;
begin
  select * into v_connection
  from cafe24_private.connections
  where auth_settings_id = p_auth_settings_id
  for update;

  if v_connection.token_version is distinct from p_token_version then
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null, updated_at = now()
    where auth_settings_id = p_auth_settings_id and lease_id = p_run_id;
    v_outcome := 'already_rotated';
  elsif v_connection.lease_id is distinct from p_run_id then
    v_outcome := 'lease_lost';
  else
    update cafe24_private.connections
    set status = case when p_failure.permanent then 'reconnect_required' else status end,
        consecutive_failures = consecutive_failures + 1,
        next_attempt_at = case when p_failure.permanent then null else p_failure.next_attempt_at end,
        last_error_code = p_failure.code,
        last_error_message = left(p_failure.message, 300),
        last_error_at = now(),
        answer_possibly_lost_at = case
          when p_failure.outcome_unknown
            then coalesce(answer_possibly_lost_at, in_flight_since, now())
          else answer_possibly_lost_at
        end,
        in_flight_since = null,
        lease_id = null,
        lease_expires_at = null,
        updated_at = now()
    where auth_settings_id = p_auth_settings_id;
    v_outcome := case when p_failure.permanent then 'reconnect_required' else 'retry_scheduled' end;
  end if;

  return query select * from cafe24_private.with_next_claim(v_outcome, p_run_id, p_claim_next);
end
$$;

-- The previous release's record_refresh_failure, called with the refresh token that was sent:
-- kept while functions of that release may still run. Compares the text as that release did.
create or replace function cafe24_private.record_refresh_failure(
  p_run_id uuid,
  p_auth_settings_id uuid,
  p_used_refresh_token text,
  p_failure cafe24_private.refresh_failure,
  p_claim_next boolean default false
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
as $$
declare
  v_connection cafe24_private.connections%rowtype;
begin
  select * into v_connection
  from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
  for update;
  return query select * from cafe24_private.record_refresh_failure(
    p_run_id, p_auth_settings_id,
    case when v_connection.refresh_token = p_used_refresh_token then v_connection.token_version end,
    p_failure, p_claim_next);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges: service_role reads the tables and may start a user's refresh; only the functions'
-- owner writes and calls the rest.
-- ---------------------------------------------------------------------------------------------

revoke all on table cafe24_private.refresh_runs from public, anon, authenticated;
grant select on table cafe24_private.refresh_runs to service_role;
revoke all on table cafe24_private.user_refresh_starts from public, anon, authenticated;
grant select on table cafe24_private.user_refresh_starts to service_role;

revoke all on function cafe24_private.start_refresh_run(
  text, text, interval, interval, boolean, text, uuid, text, interval, interval, bigint, interval,
  text[]
) from public, anon, authenticated;
revoke all on function cafe24_private.finish_refresh_run(uuid, text, jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.record_background_pass(uuid, jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.start_user_refresh(uuid, interval)
  from public, anon, authenticated;
grant execute on function cafe24_private.start_user_refresh(uuid, interval) to service_role;
revoke all on function cafe24_private.is_complete_token_pair(jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.with_next_claim(text, uuid, boolean)
  from public, anon, authenticated;
revoke all on function cafe24_private.store_refreshed_tokens(
  uuid, uuid, bigint, jsonb, boolean, boolean
) from public, anon, authenticated;
revoke all on function cafe24_private.store_refreshed_tokens(uuid, uuid, text, jsonb, boolean)
  from public, anon, authenticated;
revoke all on function cafe24_private.record_refresh_failure(
  uuid, uuid, bigint, cafe24_private.refresh_failure, boolean
) from public, anon, authenticated;
revoke all on function cafe24_private.record_refresh_failure(
  uuid, uuid, text, cafe24_private.refresh_failure, boolean
) from public, anon, authenticated;
