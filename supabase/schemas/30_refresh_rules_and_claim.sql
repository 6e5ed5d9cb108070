-- What a run refreshes, defined once: the rules a connection must pass to be refreshed now. The
-- census (why each connection in scope will or will not be refreshed), the claim (take the most
-- overdue refreshable connections), claim_connection (one named connection, 80_token.sql),
-- count_claimable (what a run left behind) and the schedule's tick counts
-- (50_schedule_and_project_calls.sql) are all built from these rules, so they cannot disagree.

-- A run's scope as the rules read it: made from its parts by make_scope, for a run from its
-- refresh_runs row (scope_of_run) and for a tick's counts (tick_scope).
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
  due_only boolean
);

-- ---------------------------------------------------------------------------------------------
-- The rules
-- ---------------------------------------------------------------------------------------------

-- The rules, checked in this order; the first one a connection fails is the one reason it is
-- skipped, and a connection that passes them all is due. Each requirement is SQL over the
-- connection `c` and the run's scope `$1` (a refresh_scope). The reasons are keys of the run
-- summary's skipped_reasons (supabase/functions/_shared/refresh/skip_reasons.ts; a test compares
-- the two).
--
-- malformed: after no_cafe24 and missing_keys, a row that is not 'ok' is malformed. Written as
-- row_state = 'ok' (not <> 'malformed') so that the claim's condition implies the due index's
-- predicate. reconnect_required includes 'disconnected': both wait for the owner to connect.
-- leased: another run holds it, or has held it since this run started (a run takes each
-- connection once). not_due: the due time is within the run's horizon, or (early: eager runs of
-- a tick, and a user's refresh now) within the early window and the pair was issued long enough
-- ago; under keep_alive also one of: expiry unknown, refresh token expiring within the window,
-- token asked for recently. Its leading `due_at <= claim_before` is the bound the due index is
-- read up to. A pair's issue is the later of this project's last refresh and its access token's
-- expiry less the lifetime Cafe24 gives access tokens: the latter dates every pair, including
-- one connected just now (due_at says nothing of age: the first-due jitter moves it) and one
-- stored by the original app or an import, of which this project saw no refresh.
create or replace function cafe24_private.refresh_rules()
returns table (ordinal integer, skip_reason text, requirement text)
language sql
immutable
set search_path = ''
as $rules$
  values
    (1, 'no_cafe24', $r$c.row_state <> 'no_cafe24'$r$),
    (2, 'missing_keys', $r$c.row_state <> 'missing_keys'$r$),
    (3, 'malformed', $r$c.row_state = 'ok'$r$),
    (4, 'reconnect_required', $r$c.status = 'active'$r$),
    (5, 'leased', $r$(c.lease_expires_at is null or c.lease_expires_at <= ($1).as_of)
      and (c.last_claimed_at is null or c.last_claimed_at < ($1).as_of)$r$),
    (6, 'backing_off', $r$c.next_attempt_at is null or c.next_attempt_at <= ($1).as_of$r$),
    (7, 'not_due', $r$c.due_at <= ($1).claim_before
      and (c.due_at <= ($1).due_before
        or (c.due_at <= ($1).early_before
          and greatest(c.last_refreshed_at,
            c.access_expires_at - cafe24_private.access_token_lifetime())
            <= ($1).early_refreshed_before))
      and (($1).policy = 'eager'
        or c.due_at = '-infinity'
        or c.refresh_expires_at is null
        or c.refresh_expires_at <= ($1).keep_alive_before
        or c.token_requested_at >= ($1).requested_since)$r$)
$rules$;

-- Which connections a run covers: every one, a mall's or a user's, and for a tick's later slices
-- only what the due index holds up to the run's horizon (the index's own predicate), so their
-- census reads that index instead of every row. Only the filters that apply are written, so the
-- planner sees `c.mall_id = …` and reads that index.
create or replace function cafe24_private.scope_condition(p_scope cafe24_private.refresh_scope)
returns text
language sql
immutable
set search_path = ''
as $$
  select 'true'
    || case when p_scope.mall_id is not null then ' and c.mall_id = ($1).mall_id' else '' end
    || case when p_scope.user_id is not null then ' and c.user_id = ($1).user_id' else '' end
    || case when coalesce(p_scope.due_only, false)
      then ' and c.row_state = ''ok'' and c.status = ''active'' and c.due_at <= ($1).claim_before'
      else '' end
$$;

-- Every rule at once: the connection is due now.
create or replace function cafe24_private.claimable_condition()
returns text
language sql
immutable
set search_path = ''
as $$
  select string_agg(format('(%s)', requirement), E'\n and ' order by ordinal)
  from cafe24_private.refresh_rules()
$$;

-- The one reason a connection will or will not be refreshed now: a skip reason, or 'due'.
create or replace function cafe24_private.verdict_expression()
returns text
language sql
immutable
set search_path = ''
as $$
  select 'case '
    || string_agg(format('when (%s) is not true then %L', requirement, skip_reason), ' '
      order by ordinal)
    || ' else ''due'' end'
  from cafe24_private.refresh_rules()
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

-- The scope of a run, from its row (refresh_runs, 40_runs_and_settle.sql). Raises when there is
-- no such run (or a row without a scope).
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
    select cafe24_private.make_scope(
      r.started_at, r.refresh_margin, r.force, r.policy, r.keep_alive_window,
      r.token_request_window, r.mall_id, r.user_id, r.lease_duration, r.due_lookahead,
      r.early_window, r.early_min_token_age, coalesce(r.tick_slot > 0, false))
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
-- verdicts are exclusive, so the counts add up to the connections in scope.
create or replace function cafe24_private.census(p_run_id uuid)
returns table (verdict text, connections bigint)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_scope cafe24_private.refresh_scope := cafe24_private.scope_of_run(p_run_id);
begin
  -- Built per call, like the claim, so that a mall's or a user's census reads its index instead
  -- of every row.
  return query execute format(
    $q$
      select v.verdict, count(*)
      from (
        select %s as verdict
        from cafe24_private.connections c
        where %s
      ) v
      group by v.verdict
    $q$,
    cafe24_private.verdict_expression(),
    cafe24_private.scope_condition(v_scope)
  )
  using v_scope;
end
$$;

-- How many connections a mall or user filter covers, before any run is recorded (a user's
-- "refresh now" with nothing in scope answers at once and leaves no run behind).
create or replace function cafe24_private.count_in_scope(p_mall_id text, p_user_id uuid)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_scope cafe24_private.refresh_scope;
  v_count bigint;
begin
  v_scope.mall_id := p_mall_id;
  v_scope.user_id := p_user_id;
  execute format(
    'select count(*) from cafe24_private.connections c where %s',
    cafe24_private.scope_condition(v_scope)
  )
  into v_count
  using v_scope;
  return v_count;
end
$$;

-- How many connections a scope would claim now (at most p_limit when given): count_claimable
-- for a run, and the tick's counts for scopes no run has yet.
create or replace function cafe24_private.count_claimable_in(
  p_scope cafe24_private.refresh_scope,
  p_limit bigint default null
)
returns bigint
language plpgsql
stable
set search_path = ''
as $$
declare
  v_count bigint;
begin
  execute format(
    'select count(*) from (select 1 from cafe24_private.connections c where %s and %s limit $2) x',
    cafe24_private.claimable_condition(),
    cafe24_private.scope_condition(p_scope)
  )
  into v_count
  using p_scope, p_limit;
  return v_count;
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

-- The claim's candidate query: the run's due connections in its scope, most overdue first, locked
-- without waiting for rows another worker holds. $1 is the run's refresh_scope, $2 the limit.
-- Built per call so that the scope reaches the planner as constants and the matching index (due,
-- mall_id or user_id) is used; a generic plan would scan every row.
create or replace function cafe24_private.claim_candidates_query(
  p_scope cafe24_private.refresh_scope
)
returns text
language sql
immutable
set search_path = ''
as $$
  select format(
    $q$select c.auth_settings_id
from cafe24_private.connections c
where %s
  and %s
order by c.due_at
limit $2
for update skip locked$q$,
    cafe24_private.claimable_condition(),
    cafe24_private.scope_condition(p_scope)
  )
$$;

-- Claims up to p_limit due connections for the run, most overdue first, skipping rows another
-- worker holds (FOR UPDATE SKIP LOCKED, then a lease that outlives the transaction). Returns the
-- refresh token to use and the token_version to settle with (the compare-and-swap of
-- store_refreshed_tokens and record_refresh_failure).
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
as $$
declare
  v_scope cafe24_private.refresh_scope := cafe24_private.scope_of_run(p_run_id);
  v_ids uuid[];
begin
  execute format(
    'select array_agg(auth_settings_id) from (%s) picked',
    cafe24_private.claim_candidates_query(v_scope)
  )
  into v_ids
  using v_scope, p_limit;

  if v_ids is null then
    return;
  end if;

  return query
  with claimed as (
    update cafe24_private.connections c
    set lease_id = p_run_id,
        lease_expires_at = now() + v_scope.lease_duration,
        answer_possibly_lost_at = coalesce(c.answer_possibly_lost_at, c.in_flight_since),
        in_flight_since = now(),
        last_claimed_at = now(),
        updated_at = now()
    where c.auth_settings_id = any (v_ids)
    returning c.auth_settings_id, c.mall_id, c.refresh_token, c.consecutive_failures,
      c.answer_possibly_lost_at, c.token_version
  )
  select
    k.auth_settings_id,
    k.mall_id,
    k.refresh_token,
    k.consecutive_failures,
    k.answer_possibly_lost_at is not null,
    k.token_version
  from claimed k;
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

revoke all on function cafe24_private.refresh_rules() from public, anon, authenticated;
revoke all on function cafe24_private.scope_condition(cafe24_private.refresh_scope)
  from public, anon, authenticated;
revoke all on function cafe24_private.claimable_condition() from public, anon, authenticated;
revoke all on function cafe24_private.verdict_expression() from public, anon, authenticated;
revoke all on function cafe24_private.make_scope(
  timestamptz, interval, boolean, text, interval, interval, text, uuid, interval, interval,
  interval, interval, boolean
) from public, anon, authenticated;
revoke all on function cafe24_private.scope_of_run(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.census(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.count_in_scope(text, uuid) from public, anon, authenticated;
revoke all on function cafe24_private.count_claimable_in(cafe24_private.refresh_scope, bigint)
  from public, anon, authenticated;
revoke all on function cafe24_private.count_claimable(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.claim_candidates_query(cafe24_private.refresh_scope)
  from public, anon, authenticated;
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
