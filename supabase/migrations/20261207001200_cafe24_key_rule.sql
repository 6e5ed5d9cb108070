-- Rows sealed under a key the function does not hold are skipped by the rules.
--
-- A run records the key ids of its function's ring (refresh_runs.token_key_ids, passed by
-- start_refresh_run), its scope carries them, and refresh_verdict skips a connection whose refresh
-- token is sealed under another key id as key_unavailable: the census counts it, the claim never
-- takes it (so nothing is sent and nothing recorded against it), and the tick's counts, which read
-- the last scheduled run's key ids, do not call for it. A run that does not say (an earlier
-- release's) claims every connection as before. A scheduled invocation's background pass
-- (pending attempts swept, rows resealed) is added to its run's stored summary.

alter table cafe24_private.refresh_runs add column if not exists token_key_ids text[];

do $$
begin
  if not exists (
    select 1 from pg_attribute
    where attrelid = 'cafe24_private.refresh_scope'::regclass
      and attname = 'key_ids' and not attisdropped
  ) then
    alter type cafe24_private.refresh_scope add attribute key_ids text[];
  end if;
end
$$;

drop function if exists cafe24_private.start_refresh_run(
  text, text, interval, interval, boolean, text, uuid, text, interval, interval, bigint, interval
);

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
    select cafe24_private.scope_with_key_ids(cafe24_private.make_scope(
      r.started_at, r.refresh_margin, r.force, r.policy, r.keep_alive_window,
      r.token_request_window, r.mall_id, r.user_id, r.lease_duration, r.due_lookahead,
      r.early_window, r.early_min_token_age, coalesce(r.tick_slot > 0, false)), r.token_key_ids)
    from cafe24_private.refresh_runs r
    where r.id = p_run_id
  );
  if v_scope.due_before is null or v_scope.lease_duration is null then
    raise exception 'no refresh run % with a scope', p_run_id using errcode = '22023';
  end if;
  return v_scope;
end
$$;

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
  return v_id;
end
$$;

-- The scope a tick counts with: the settings of the last scheduled run (the function's refresh
-- margin, policy, windows and key ids, recorded with every run), as of p_as_of, looking
-- p_lookahead ahead.
-- Before the first scheduled run, the function's defaults (config.ts): 30-minute margin, eager.
create or replace function cafe24_private.tick_scope(
  p_as_of timestamptz,
  p_lookahead interval,
  p_early_window interval default null,
  p_early_min_token_age interval default null
)
returns cafe24_private.refresh_scope
language sql
stable
set search_path = ''
as $$
  select cafe24_private.scope_with_key_ids(cafe24_private.make_scope(
    p_as_of,
    coalesce(r.refresh_margin, interval '30 minutes'),
    false,
    coalesce(r.policy, 'eager'),
    coalesce(r.keep_alive_window, interval '7 days'),
    coalesce(r.token_request_window, interval '24 hours'),
    null,
    null,
    coalesce(r.lease_duration, interval '75 seconds'),
    p_lookahead,
    p_early_window,
    p_early_min_token_age
  ), r.token_key_ids)
  from (select 1) one
  left join lateral (
    select * from cafe24_private.refresh_runs r
    where r.trigger = 'cron' and r.refresh_margin is not null
    order by r.started_at desc
    limit 1
  ) r on true
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

revoke all on function cafe24_private.scope_with_key_ids(cafe24_private.refresh_scope, text[])
  from public, anon, authenticated;
revoke all on function cafe24_private.start_refresh_run(
  text, text, interval, interval, boolean, text, uuid, text, interval, interval, bigint, interval,
  text[]
) from public, anon, authenticated;
revoke all on function cafe24_private.missing_key_ids(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.record_background_pass(uuid, jsonb)
  from public, anon, authenticated;
