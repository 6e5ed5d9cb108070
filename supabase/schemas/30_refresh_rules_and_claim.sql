-- What a run refreshes, defined once: refresh_verdict, the rules a connection must pass to be
-- refreshed now, and in_scope, the connections a run covers. The census (why each connection in
-- scope will or will not be refreshed), the claim (take the most overdue refreshable
-- connections), claim_connection (one named connection, 80_token.sql), count_claimable (what a
-- run left behind) and the schedule's tick counts (50_schedule_and_project_calls.sql) all read
-- these two, so they cannot disagree. Every statement is static SQL: nothing is planned from
-- text built per call.

-- A run's scope as the rules read it: made from its parts by make_scope, for a run once, when it
-- starts (stored on its refresh_runs row, read by scope_of_run and the claim), and for a tick's
-- counts (tick_scope). A table column has this type: a new attribute needs ALTER TYPE ... CASCADE.
create type cafe24_private.refresh_scope as (
  -- The run's start: every lease, backoff and due comparison is made at this instant.
  as_of timestamptz,
  -- Due means due_at <= this: as_of + the refresh margin (+ a tick's lookahead), or infinity when
  -- forced.
  due_before timestamptz,
  policy text,
  -- keep_alive: refresh token expiries up to here are refreshed ...
  keep_alive_before timestamptz,
  -- ... and so are connections whose token was asked for since then.
  requested_since timestamptz,
  mall_id text,
  user_id uuid,
  lease_duration interval,
  -- Early refreshes: due_at up to here (infinity for a user's refresh now), for pairs issued
  -- before early_refreshed_before (see not_due below for how a pair's issue is dated; the name
  -- is from when only this project's refreshes dated a pair, and a released migration adds the
  -- attribute by it). Null: no early refreshes.
  early_before timestamptz,
  early_refreshed_before timestamptz,
  -- The latest due_at any rule admits: the bound the due index is read up to.
  claim_before timestamptz,
  -- The scope is only what the due index holds up to claim_before (a tick's later slices).
  due_only boolean,
  -- The key ids the run's function holds (refresh_runs.token_key_ids); null: not known.
  key_ids text[]
);

-- ---------------------------------------------------------------------------------------------
-- The rules
-- ---------------------------------------------------------------------------------------------

-- The one reason a connection `c` will or will not be refreshed now under the run's scope `s`: the
-- first rule it fails, or 'due' when it passes them all. The reasons are keys of the run
-- summary's skipped_reasons (supabase/functions/_shared/refresh/skip_reasons.ts; a test compares
-- the two).
--
-- malformed: after no_cafe24 and missing_keys, a row that is not 'ok' is malformed.
-- reconnect_required includes 'disconnected': both wait for the owner to connect.
-- key_unavailable: the refresh token is sealed (v1.<kid>.…) under a key id the run's function
-- does not hold, so it could not be sent; legacy plaintext and every key the ring holds pass, and
-- so does every row when the run did not say which keys it holds. leased: another
-- run holds it, or has held it since this run started (a run takes each connection once).
-- not_due: the due time is within the run's horizon, or (early: eager runs of a tick, and a
-- user's refresh now) within the early window and the pair was issued long enough ago; under
-- keep_alive also one of: expiry unknown, refresh token expiring within the window, token asked
-- for recently. A pair's issue is the later of this project's last refresh and its access
-- token's expiry less the lifetime Cafe24 gives access tokens: the latter dates every pair,
-- including one connected just now (due_at says nothing of age: the first-due jitter moves it)
-- and one stored by the original app or an import, of which this project saw no refresh.
--
-- Written as one SQL expression without a SET clause so that PostgreSQL inlines it into the
-- statements that use it: a census reads it for every row, and a claim filters with it while it
-- walks an index. It reads only the row and the scope, and names nothing through search_path.
-- A 'due' verdict implies row_state = 'ok', status = 'active' and due_at <= claim_before: the
-- due index's predicate and the bound it is read up to, which the claim states beside it.
create or replace function cafe24_private.refresh_verdict(
  c cafe24_private.connections,
  s cafe24_private.refresh_scope
)
returns text
language sql
stable
as $$
  select case
    when (c.row_state <> 'no_cafe24') is not true then 'no_cafe24'
    when (c.row_state <> 'missing_keys') is not true then 'missing_keys'
    when (c.row_state = 'ok') is not true then 'malformed'
    when (c.status = 'active') is not true then 'reconnect_required'
    when (s.key_ids is null
      or c.refresh_token not like 'v1.%'
      or split_part(c.refresh_token, '.', 2) = any (s.key_ids)) is not true then 'key_unavailable'
    when ((c.lease_expires_at is null or c.lease_expires_at <= s.as_of)
      and (c.last_claimed_at is null or c.last_claimed_at < s.as_of)) is not true then 'leased'
    when (c.next_attempt_at is null or c.next_attempt_at <= s.as_of) is not true
      then 'backing_off'
    when (c.due_at <= s.claim_before
      and (c.due_at <= s.due_before
        or (c.due_at <= s.early_before
          and greatest(c.last_refreshed_at,
            c.access_expires_at - cafe24_private.access_token_lifetime())
            <= s.early_refreshed_before))
      and (s.policy = 'eager'
        or c.due_at = '-infinity'
        or c.refresh_expires_at is null
        or c.refresh_expires_at <= s.keep_alive_before
        or c.token_requested_at >= s.requested_since)) is not true then 'not_due'
    else 'due'
  end
$$;

-- Whether the run covers connection `c`: every connection, a mall's, a user's, and for a tick's
-- later slices only what the due index holds up to the run's horizon. Inlined like the verdict.
-- The statements that filter with it also state the condition that picks their index
-- (c.mall_id = s.mall_id, …): a plan made once for every scope cannot choose its index from
-- values it does not know.
create or replace function cafe24_private.in_scope(
  c cafe24_private.connections,
  s cafe24_private.refresh_scope
)
returns boolean
language sql
stable
as $$
  select (s.mall_id is null or c.mall_id = s.mall_id)
    and (s.user_id is null or c.user_id = s.user_id)
    and (s.due_only is not true
      or (c.row_state = 'ok' and c.status = 'active' and c.due_at <= s.claim_before))
$$;

-- ---------------------------------------------------------------------------------------------
-- Scopes
-- ---------------------------------------------------------------------------------------------

-- A scope from its parts: the one place that turns margins and windows into the instants the
-- rules compare with. Used for runs (scope_of_run) and for the tick's counts (tick_scope).
-- A forced run with a minimum token age (p_early_min_token_age: a user's refresh now) is an
-- early refresh without a window: what is due, and every pair issued at least that long ago. A
-- forced run without one (an admin's) takes every connection.
create or replace function cafe24_private.make_scope(
  p_as_of timestamptz,
  p_refresh_margin interval,
  p_force boolean,
  p_policy text,
  p_keep_alive_window interval,
  p_token_request_window interval,
  p_mall_id text,
  p_user_id uuid,
  p_lease_duration interval,
  p_due_lookahead interval default null,
  p_early_window interval default null,
  p_early_min_token_age interval default null,
  p_due_only boolean default false
)
returns cafe24_private.refresh_scope
language plpgsql
stable
set search_path = ''
as $$
declare
  v_scope cafe24_private.refresh_scope;
begin
  v_scope.as_of := p_as_of;
  v_scope.due_before := case
    when p_force and p_early_min_token_age is null then 'infinity'::timestamptz
    else p_as_of + p_refresh_margin + coalesce(p_due_lookahead, interval '0')
  end;
  v_scope.policy := p_policy;
  v_scope.keep_alive_before := p_as_of + p_keep_alive_window;
  v_scope.requested_since := p_as_of - p_token_request_window;
  v_scope.mall_id := p_mall_id;
  v_scope.user_id := p_user_id;
  v_scope.lease_duration := p_lease_duration;
  if coalesce(p_force, false) then
    if p_early_min_token_age is not null then
      v_scope.early_before := 'infinity'::timestamptz;
      v_scope.early_refreshed_before := p_as_of - p_early_min_token_age;
    end if;
  elsif p_policy = 'eager' and p_early_window is not null then
    v_scope.early_before := v_scope.due_before + p_early_window;
    v_scope.early_refreshed_before := p_as_of - coalesce(p_early_min_token_age, interval '0');
  end if;
  v_scope.claim_before := greatest(v_scope.due_before, v_scope.early_before);
  v_scope.due_only := coalesce(p_due_only, false);
  return v_scope;
end
$$;

-- A scope with the key ids its function holds (refresh_runs.token_key_ids): the rules skip rows
-- sealed under any other.
create or replace function cafe24_private.scope_with_key_ids(
  p_scope cafe24_private.refresh_scope,
  p_key_ids text[]
)
returns cafe24_private.refresh_scope
language plpgsql
immutable
set search_path = ''
as $$
begin
  p_scope.key_ids := p_key_ids;
  return p_scope;
end
$$;

-- The scope of a run: the one start_refresh_run stored on its row (refresh_runs.scope), or, for a
-- row without one (a run started by an earlier release), made from the row's parts. Raises when
-- there is no such run (or a row without a scope).
create or replace function cafe24_private.scope_of_run(p_run_id uuid)
returns cafe24_private.refresh_scope
language plpgsql
stable
set search_path = ''
as $$
declare
  v_scope cafe24_private.refresh_scope;
begin
  v_scope := (
    select coalesce(r.scope, cafe24_private.scope_with_key_ids(cafe24_private.make_scope(
      r.started_at, r.refresh_margin, r.force, r.policy, r.keep_alive_window,
      r.token_request_window, r.mall_id, r.user_id, r.lease_duration, r.due_lookahead,
      r.early_window, r.early_min_token_age, coalesce(r.tick_slot > 0, false)), r.token_key_ids))
    from cafe24_private.refresh_runs r
    where r.id = p_run_id
  );
  if v_scope.due_before is null or v_scope.lease_duration is null then
    raise exception 'no refresh run % with a scope', p_run_id using errcode = '22023';
  end if;
  return v_scope;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Counting
-- ---------------------------------------------------------------------------------------------

-- Counts every connection in the run's scope by its verdict (one row per verdict present). The
-- verdicts are exclusive, so the counts add up to the connections in scope. Once per run, so
-- each call is planned with its scope's values (force_custom_plan): a mall's or a user's census
-- reads that index, a tick's later slice the due index, and a full census every row.
create or replace function cafe24_private.census(p_run_id uuid)
returns table (verdict text, connections bigint)
language plpgsql
stable
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
declare
  v_scope cafe24_private.refresh_scope := cafe24_private.scope_of_run(p_run_id);
begin
  return query
  select v.verdict, count(*)
  from (
    select cafe24_private.refresh_verdict(c, v_scope) as verdict
    from cafe24_private.connections c
    where cafe24_private.in_scope(c, v_scope)
  ) v
  group by v.verdict;
end
$$;

-- The key ids the run's rules skip connections for (key_unavailable), with how many each: the
-- run's warning names them. Read only when the census counted such connections.
create or replace function cafe24_private.missing_key_ids(p_run_id uuid)
returns table (kid text, connections bigint)
language plpgsql
stable
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
declare
  v_scope cafe24_private.refresh_scope := cafe24_private.scope_of_run(p_run_id);
begin
  return query
  select split_part(c.refresh_token, '.', 2), count(*)
  from cafe24_private.connections c
  where cafe24_private.in_scope(c, v_scope)
    and cafe24_private.refresh_verdict(c, v_scope) = 'key_unavailable'
  group by 1
  order by 1;
end
$$;

-- How many connections a mall or user filter covers, before any run is recorded (a user's
-- "refresh now" with nothing in scope answers at once and leaves no run behind).
create or replace function cafe24_private.count_in_scope(p_mall_id text, p_user_id uuid)
returns bigint
language plpgsql
stable
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
declare
  v_scope cafe24_private.refresh_scope;
begin
  v_scope.mall_id := p_mall_id;
  v_scope.user_id := p_user_id;
  return (
    select count(*) from cafe24_private.connections c
    where cafe24_private.in_scope(c, v_scope)
  );
end
$$;

-- How many connections a scope would claim now (at most p_limit when given): count_claimable
-- for a run, and the tick's counts for scopes no run has yet. Planned per call like the census.
create or replace function cafe24_private.count_claimable_in(
  p_scope cafe24_private.refresh_scope,
  p_limit bigint default null
)
returns bigint
language plpgsql
stable
set search_path = ''
set plan_cache_mode = force_custom_plan
as $$
begin
  return (
    select count(*) from (
      select 1 from cafe24_private.connections c
      where c.row_state = 'ok' and c.status = 'active' and c.due_at <= p_scope.claim_before
        and cafe24_private.in_scope(c, p_scope)
        and cafe24_private.refresh_verdict(c, p_scope) = 'due'
      limit p_limit
    ) x
  );
end
$$;

-- Counts what the run would still claim (its `remaining` when it stops early).
create or replace function cafe24_private.count_claimable(p_run_id uuid)
returns bigint
language sql
stable
set search_path = ''
as $$
  select cafe24_private.count_claimable_in(cafe24_private.scope_of_run(p_run_id))
$$;

-- ---------------------------------------------------------------------------------------------
-- Claiming
-- ---------------------------------------------------------------------------------------------

-- Claims up to p_limit due connections for the run, most overdue first, skipping rows another
-- worker holds (FOR UPDATE SKIP LOCKED, then a lease that outlives the transaction). Returns the
-- refresh token to use and the token_version to settle with (the compare-and-swap of
-- store_refreshed_tokens and record_refresh_failure).
--
-- The hot path: every refresh's settle claims the next connection here. One static statement
-- per scope shape (a mall's, a user's, everything else through the due index), each planned
-- once per session (force_generic_plan) instead of on every call; each reads its own index. The
-- scope is the one start_refresh_run stored on the run's row, read as it is.
--
-- A plan made once knows neither the limit (1 on the hot path) nor how many rows are due, and
-- left to itself it fetches every due row, sorts them and keeps the first: each claim then costs
-- the whole backlog. Without bitmap and sequential scans the due-index shape reads the index in
-- due order and stops at the first row it can lock; a mall's or a user's reads its own index.
create or replace function cafe24_private.claim_due_pairs(
  p_run_id uuid,
  p_limit integer default 1
)
returns table (
  auth_settings_id uuid,
  mall_id text,
  refresh_token text,
  consecutive_failures integer,
  answer_possibly_lost boolean,
  token_version bigint
)
language plpgsql
set search_path = ''
set plan_cache_mode = force_generic_plan
set enable_bitmapscan = off
set enable_seqscan = off
as $$
declare
  v_scope cafe24_private.refresh_scope :=
    (select r.scope from cafe24_private.refresh_runs r where r.id = p_run_id);
  v_ids uuid[];
begin
  if v_scope.lease_duration is null then
    v_scope := cafe24_private.scope_of_run(p_run_id);
  end if;
  if v_scope.mall_id is not null then
    v_ids := array(
      select c.auth_settings_id from cafe24_private.connections c
      where c.mall_id = v_scope.mall_id
        and cafe24_private.in_scope(c, v_scope)
        and cafe24_private.refresh_verdict(c, v_scope) = 'due'
      order by c.due_at
      limit p_limit
      for update skip locked);
  elsif v_scope.user_id is not null then
    v_ids := array(
      select c.auth_settings_id from cafe24_private.connections c
      where c.user_id = v_scope.user_id
        and cafe24_private.in_scope(c, v_scope)
        and cafe24_private.refresh_verdict(c, v_scope) = 'due'
      order by c.due_at
      limit p_limit
      for update skip locked);
  else
    v_ids := array(
      select c.auth_settings_id from cafe24_private.connections c
      where c.row_state = 'ok' and c.status = 'active' and c.due_at <= v_scope.claim_before
        and cafe24_private.in_scope(c, v_scope)
        and cafe24_private.refresh_verdict(c, v_scope) = 'due'
      order by c.due_at
      limit p_limit
      for update skip locked);
  end if;
  if cardinality(v_ids) = 0 then
    return;
  end if;

  return query
  update cafe24_private.connections c
  set lease_id = p_run_id,
      lease_expires_at = now() + v_scope.lease_duration,
      answer_possibly_lost_at = coalesce(c.answer_possibly_lost_at, c.in_flight_since),
      in_flight_since = now(),
      last_claimed_at = now(),
      updated_at = now()
  where c.auth_settings_id = any (v_ids)
  returning c.auth_settings_id, c.mall_id, c.refresh_token, c.consecutive_failures,
    c.answer_possibly_lost_at is not null, c.token_version;
end
$$;

-- The previous release's claim (no token_version; its settle compares the refresh token's
-- text): kept while functions of that release may still run, between `db push` and
-- `functions deploy`.
create or replace function cafe24_private.claim_due_connections(
  p_run_id uuid,
  p_limit integer default 1
)
returns table (
  auth_settings_id uuid,
  mall_id text,
  refresh_token text,
  consecutive_failures integer,
  answer_possibly_lost boolean
)
language sql
set search_path = ''
as $$
  select p.auth_settings_id, p.mall_id, p.refresh_token, p.consecutive_failures,
    p.answer_possibly_lost
  from cafe24_private.claim_due_pairs(p_run_id, p_limit) p
$$;

-- Lets go of connections the run claimed but sent no request for (the worker is about to be
-- stopped). They become claimable again at once, by any run: nothing was sent, so no answer can
-- be lost. A connection whose request is in flight is never passed here; it keeps its lease.
create or replace function cafe24_private.release_leases(p_run_id uuid, p_auth_settings_ids uuid[])
returns integer
language sql
set search_path = ''
as $$
  with released as (
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null, last_claimed_at = null,
      updated_at = now()
    where lease_id = p_run_id and auth_settings_id = any (p_auth_settings_ids)
    returning 1
  )
  select count(*)::integer from released
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges: only the functions' owner calls them.
-- ---------------------------------------------------------------------------------------------

revoke all on function cafe24_private.refresh_verdict(
  cafe24_private.connections, cafe24_private.refresh_scope
) from public, anon, authenticated;
revoke all on function cafe24_private.in_scope(
  cafe24_private.connections, cafe24_private.refresh_scope
) from public, anon, authenticated;
revoke all on function cafe24_private.make_scope(
  timestamptz, interval, boolean, text, interval, interval, text, uuid, interval, interval,
  interval, interval, boolean
) from public, anon, authenticated;
revoke all on function cafe24_private.scope_with_key_ids(cafe24_private.refresh_scope, text[])
  from public, anon, authenticated;
revoke all on function cafe24_private.scope_of_run(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.census(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.missing_key_ids(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.count_in_scope(text, uuid) from public, anon, authenticated;
revoke all on function cafe24_private.count_claimable_in(cafe24_private.refresh_scope, bigint)
  from public, anon, authenticated;
revoke all on function cafe24_private.count_claimable(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.claim_due_pairs(uuid, integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_due_connections(uuid, integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.release_leases(uuid, uuid[])
  from public, anon, authenticated;

-- Lets go of a claimed connection whose refresh token the function could not open (its key is
-- not in the ring, or the value was moved or forged): no request was sent, so no failure is
-- recorded (consecutive_failures and the error stay as they are, never reconnect_required).
-- Unlike release_leases it keeps last_claimed_at, so the same run does not claim it again, and
-- it holds the row back for 10 minutes (next_attempt_at): rows nobody can open would otherwise
-- stay the most overdue and take every claim of every run ahead of the malls that can be
-- refreshed. A restored key brings the row back within those 10 minutes.
create or replace function cafe24_private.set_aside_unopened(p_run_id uuid, p_auth_settings_id uuid)
returns boolean
language sql
set search_path = ''
as $$
  with released as (
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null,
      next_attempt_at = now() + interval '10 minutes', updated_at = now()
    where lease_id = p_run_id and auth_settings_id = p_auth_settings_id
    returning 1
  )
  select exists (select 1 from released)
$$;

revoke all on function cafe24_private.set_aside_unopened(uuid, uuid)
  from public, anon, authenticated;
