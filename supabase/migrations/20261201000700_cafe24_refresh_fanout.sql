-- The schedule sizes itself to the backlog. Each pg_cron tick counts what is due before the next
-- tick, and starts as many cafe24-refresh invocations as that takes (each refreshing at most
-- per_invocation_cap connections, at most max_parallel_invocations at once), through pg_net. The
-- invocations share the lease queue (claim_due_connections, FOR UPDATE SKIP LOCKED), so they never
-- refresh one connection twice. With spare capacity a tick also refreshes a bounded number of
-- connections a little early, so that a bunch of malls connected together spreads out over the
-- refresh cycle instead of coming due together for ever; new connections start with a jittered
-- first due time for the same reason.
--
--   malls kept fresh ≈ max_parallel_invocations × per_invocation_cap × (refresh interval / tick)
--   15 × 40 × (90 min / 20 s) = 162,000 under the eager policy with Supabase's pg_cron (1.5 and
--   later: 20-second ticks); 15 × 40 × (90 min / 1 min) = 54,000 where pg_cron only does minutes
--
-- Everything an operator sets is in one row (refresh_schedule_settings), changed with one call
-- (set_refresh_schedule); every tick is recorded (refresh_ticks) with what it counted, what it
-- started and why.

-- ---------------------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------------------

create table if not exists cafe24_private.refresh_schedule_settings (
  id boolean primary key default true check (id),
  -- Connections one invocation refreshes at most (sent as max_connections; the function's own
  -- CAFE24_MAX_CONNECTIONS_PER_RUN bounds it too). Small enough that an invocation's CPU stays
  -- under the run's 150 ms budget, and so under the hosted 200 ms, at the 2.5-3 ms a refresh
  -- costs (bench/SCALE.md measures it): the budget then rarely has to stop a run.
  per_invocation_cap integer not null default 40 check (per_invocation_cap between 1 and 1000),
  -- Invocations one tick starts at most. Each opens CAFE24_REFRESH_POOL_SIZE database
  -- connections, so this × the pool size is what the refresher may hold at once (15 × 1: a
  -- quarter of the smallest compute size's 60 direct connections, 7.5 % of its 200 pooler
  -- clients).
  max_parallel_invocations integer not null default 15
    check (max_parallel_invocations between 1 and 200),
  -- Seconds between ticks: the pg_cron job's schedule. 20 where pg_cron takes seconds (1.5 and
  -- later, as Supabase ships it), else 60 (set when the row is first written, below): shorter
  -- ticks start fewer invocations at a time for the same fleet.
  tick_seconds integer not null default 60 check (tick_seconds between 1 and 3600),
  -- Early refreshes (eager policy only): at most this share of a tick's spare capacity ...
  early_share_percent integer not null default 50 check (early_share_percent between 0 and 100),
  -- ... for connections due at most this long after the tick's own horizon ...
  early_window interval not null default interval '45 minutes'
    check (early_window >= interval '0'),
  -- ... whose token this project refreshed at least this long ago (so a token is never rotated
  -- again minutes after it was issued, whatever the early window).
  early_min_token_age interval not null default interval '30 minutes'
    check (early_min_token_age >= interval '0'),
  -- A connection made through the connect flow is first due up to this much earlier than its
  -- token's expiry says (uniformly drawn), so that malls connected together do not stay due
  -- together. Keep it under the token's lifetime less the refresh margin (2 h − 30 min).
  first_due_spread interval not null default interval '60 minutes'
    check (first_due_spread >= interval '0'),
  updated_at timestamptz not null default now()
);

comment on table cafe24_private.refresh_schedule_settings is
  'The refresh schedule''s settings (one row). Change them with cafe24_private.set_refresh_schedule(…).';

-- Whether this database's pg_cron takes 'N seconds' schedules (1.5 and later).
create or replace function cafe24_private.pg_cron_takes_seconds()
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce((
    select string_to_array(regexp_replace(extversion, '[^0-9.].*$', ''), '.')::integer[]
      >= array[1, 5]
    from pg_extension where extname = 'pg_cron'
  ), false)
$$;

-- Re-applying the migrations keeps what an operator set.
insert into cafe24_private.refresh_schedule_settings (id, tick_seconds)
values (true, case when cafe24_private.pg_cron_takes_seconds() then 20 else 60 end)
on conflict (id) do nothing;

-- The pg_cron schedule for a tick of p_tick_seconds: whole minutes that divide an hour as a cron
-- expression, shorter ticks as pg_cron's 'N seconds' (pg_cron 1.5 and later).
create or replace function cafe24_private.refresh_cron_schedule(p_tick_seconds integer)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_tick_seconds between 1 and 59 then
    return format('%s seconds', p_tick_seconds);
  elsif p_tick_seconds = 60 then
    return '* * * * *';
  elsif p_tick_seconds = 3600 then
    return '0 * * * *';
  elsif p_tick_seconds between 120 and 1800 and p_tick_seconds % 60 = 0
    and 60 % (p_tick_seconds / 60) = 0
  then
    return format('*/%s * * * *', p_tick_seconds / 60);
  end if;
  raise exception 'tick_seconds must be 1 to 59, or a number of minutes that divides an hour (60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800, 3600); got %', p_tick_seconds
    using errcode = '22023';
end
$$;

-- Registers the cafe24-refresh job with the settings' tick (by name: an existing job is updated,
-- never duplicated). Sub-minute ticks need pg_cron 1.5.
create or replace function cafe24_private.schedule_refresh_job()
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_schedule text := cafe24_private.refresh_cron_schedule(
    (select s.tick_seconds from cafe24_private.refresh_schedule_settings s));
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not installed: cafe24-refresh is not scheduled';
    return null;
  end if;
  if v_schedule like '% seconds' and not cafe24_private.pg_cron_takes_seconds() then
    raise exception 'a tick under 60 seconds needs pg_cron 1.5 or later (this database has %)',
      (select extversion from pg_extension where extname = 'pg_cron')
      using errcode = '22023';
  end if;
  perform cron.schedule('cafe24-refresh', v_schedule,
    'select cafe24_private.invoke_cafe24_refresh()');
  return v_schedule;
end
$$;

-- Changes any of the settings (the others stay), reschedules the job when the tick changes, and
-- returns the row.
--   select * from cafe24_private.set_refresh_schedule(max_parallel_invocations => 30);
create or replace function cafe24_private.set_refresh_schedule(
  per_invocation_cap integer default null,
  max_parallel_invocations integer default null,
  tick_seconds integer default null,
  early_share_percent integer default null,
  early_window interval default null,
  early_min_token_age interval default null,
  first_due_spread interval default null
)
returns cafe24_private.refresh_schedule_settings
language plpgsql
set search_path = ''
as $$
declare
  v_row cafe24_private.refresh_schedule_settings;
begin
  if set_refresh_schedule.tick_seconds is not null then
    perform cafe24_private.refresh_cron_schedule(set_refresh_schedule.tick_seconds);
  end if;
  update cafe24_private.refresh_schedule_settings s set
    per_invocation_cap = coalesce(set_refresh_schedule.per_invocation_cap, s.per_invocation_cap),
    max_parallel_invocations =
      coalesce(set_refresh_schedule.max_parallel_invocations, s.max_parallel_invocations),
    tick_seconds = coalesce(set_refresh_schedule.tick_seconds, s.tick_seconds),
    early_share_percent = coalesce(set_refresh_schedule.early_share_percent, s.early_share_percent),
    early_window = coalesce(set_refresh_schedule.early_window, s.early_window),
    early_min_token_age = coalesce(set_refresh_schedule.early_min_token_age, s.early_min_token_age),
    first_due_spread = coalesce(set_refresh_schedule.first_due_spread, s.first_due_spread),
    updated_at = now()
  where s.id
  returning s.* into v_row;
  if set_refresh_schedule.tick_seconds is not null then
    perform cafe24_private.schedule_refresh_job();
  end if;
  return v_row;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Ticks
-- ---------------------------------------------------------------------------------------------

create table if not exists cafe24_private.refresh_ticks (
  id bigserial primary key,
  ticked_at timestamptz not null default now(),
  -- The policy the tick counted under: the one the last cron run recorded (the function's
  -- CAFE24_REFRESH_POLICY), eager before any.
  policy text not null,
  -- Connections due before the next tick (the refresh margin plus one tick from now).
  due bigint not null,
  -- Early refreshes (eager): the even share per tick of what comes due within the early window,
  -- and how many not-yet-due connections this tick refreshes to fill the gap up to it.
  even_share bigint,
  early bigint not null default 0,
  -- due + early: what the tick's invocations may refresh together.
  requested bigint not null,
  per_invocation_cap integer not null,
  max_parallel_invocations integer not null,
  -- Requests sent, and the max_connections each carried (requested split evenly, ≤ the cap).
  invocations integer not null default 0,
  per_invocation integer,
  -- More invocations were needed than max_parallel_invocations allows: the rest waits.
  bound_hit boolean not null default false,
  -- sent | nothing_due | refused (reason says why: a Vault secret, the project URL).
  outcome text not null check (outcome in ('sent', 'nothing_due', 'refused')),
  reason text,
  request_ids bigint[],
  -- The scope the tick gives its runs (start_refresh_run copies it).
  lookahead interval not null,
  early_window interval,
  early_min_token_age interval,
  -- Runs that started for this tick (each run's slot is its place in this count).
  runs_started integer not null default 0
);

create index if not exists refresh_ticks_ticked_at_idx on cafe24_private.refresh_ticks (ticked_at);

comment on table cafe24_private.refresh_ticks is
  'One row per cafe24-refresh tick: what it counted, how many invocations it started and why. Trimmed by trim_histories.';

-- ---------------------------------------------------------------------------------------------
-- A run's scope, now with the tick's lookahead and early window
-- ---------------------------------------------------------------------------------------------

alter table cafe24_private.refresh_runs
  add column if not exists tick_id bigint,
  -- The run's place among its tick's runs (0 = first). Only the first counts every connection
  -- for its census; the others count what their tick's horizon covers.
  add column if not exists tick_slot integer,
  -- Cron runs also refresh what comes due before the next tick.
  add column if not exists due_lookahead interval,
  -- Early refreshes granted by the tick (eager only): connections due this much after the
  -- run's horizon whose token is at least early_min_token_age old.
  add column if not exists early_window interval,
  add column if not exists early_min_token_age interval;

do $$
declare
  v_attribute text[];
begin
  foreach v_attribute slice 1 in array array[
    -- Early refreshes: due_at up to here, for tokens this project refreshed before
    -- early_refreshed_before. Null: no early refreshes.
    array['early_before', 'timestamptz'],
    array['early_refreshed_before', 'timestamptz'],
    -- The latest due_at any rule admits: the bound the due index is read up to.
    array['claim_before', 'timestamptz'],
    -- The scope is only what the due index holds up to claim_before (a tick's later slices).
    array['due_only', 'boolean']
  ] loop
    if not exists (
      select 1 from pg_attribute
      where attrelid = 'cafe24_private.refresh_scope'::regclass
        and attname = v_attribute[1] and not attisdropped
    ) then
      execute format('alter type cafe24_private.refresh_scope add attribute %I %s',
        v_attribute[1], v_attribute[2]);
    end if;
  end loop;
end
$$;

-- A scope from its parts: the one place that turns margins and windows into the instants the
-- rules compare with. Used for runs (scope_of_run) and for the tick's counts (tick_scope).
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
    when p_force then 'infinity'::timestamptz
    else p_as_of + p_refresh_margin + coalesce(p_due_lookahead, interval '0')
  end;
  v_scope.policy := p_policy;
  v_scope.keep_alive_before := p_as_of + p_keep_alive_window;
  v_scope.requested_since := p_as_of - p_token_request_window;
  v_scope.mall_id := p_mall_id;
  v_scope.user_id := p_user_id;
  v_scope.lease_duration := p_lease_duration;
  if not coalesce(p_force, false) and p_policy = 'eager' and p_early_window is not null then
    v_scope.early_before := v_scope.due_before + p_early_window;
    v_scope.early_refreshed_before := p_as_of - coalesce(p_early_min_token_age, interval '0');
  end if;
  v_scope.claim_before := greatest(v_scope.due_before, v_scope.early_before);
  v_scope.due_only := coalesce(p_due_only, false);
  return v_scope;
end
$$;

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

-- The rules of …_cafe24_claim.sql, with `not_due` extended by the early window: a connection is
-- due when its due time is within the run's horizon, or (early) within the early window and its
-- token was refreshed long enough ago. The leading `due_at <= claim_before` is the bound the due
-- index is read up to.
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
          and c.last_refreshed_at <= ($1).early_refreshed_before))
      and (($1).policy = 'eager'
        or c.due_at = '-infinity'
        or c.refresh_expires_at is null
        or c.refresh_expires_at <= ($1).keep_alive_before
        or c.token_requested_at >= ($1).requested_since)$r$)
$rules$;

-- Which connections a run covers: every one, a mall's or a user's, and for a tick's later slices
-- only what the due index holds up to the run's horizon (the index's own predicate), so their
-- census reads that index instead of every row.
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

create or replace function cafe24_private.count_claimable(p_run_id uuid)
returns bigint
language sql
stable
set search_path = ''
as $$
  select cafe24_private.count_claimable_in(cafe24_private.scope_of_run(p_run_id))
$$;

-- start_refresh_run with the tick a cron run was started by. A run of a tick takes the tick's
-- lookahead and early window into its scope, and its slot (0 for the first of the tick's runs to
-- start). Replaces the signature without p_tick_id (named-argument calls stay as they were).
drop function if exists cafe24_private.start_refresh_run(
  text, text, interval, interval, boolean, text, uuid, text, interval, interval
);

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
  p_tick_id bigint default null
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
    early_min_token_age
  ) values (
    p_trigger, p_mode, p_refresh_margin, p_lease_duration, coalesce(p_force, false), p_mall_id,
    p_user_id, p_policy, p_keep_alive_window, p_token_request_window,
    case when v_slot is not null then p_tick_id end, v_slot, v_lookahead,
    case when p_policy = 'eager' then v_early_window end,
    case when p_policy = 'eager' then v_early_min_token_age end
  )
  returning id into v_id;
  return v_id;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The tick
-- ---------------------------------------------------------------------------------------------

-- The scope a tick counts with: the settings of the last scheduled run (the function's refresh
-- margin, policy and windows, recorded with every run), as of p_as_of, looking p_lookahead ahead.
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
  select cafe24_private.make_scope(
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
  )
  from (select 1) one
  left join lateral (
    select * from cafe24_private.refresh_runs r
    where r.trigger = 'cron' and r.refresh_margin is not null
    order by r.started_at desc
    limit 1
  ) r on true
$$;

-- How many not-yet-due connections a tick may refresh early: enough to bring the tick up to its
-- even share of what comes due within the early window (p_upcoming spread over that window), but
-- at most p_early_share_percent of the capacity the due connections leave. Pure.
create or replace function cafe24_private.refresh_tick_early_budget(
  p_due bigint,
  p_upcoming bigint,
  p_capacity bigint,
  p_tick_seconds integer,
  p_early_window interval,
  p_early_share_percent integer
)
returns table (even_share bigint, budget bigint)
language sql
immutable
set search_path = ''
as $$
  select e.share,
    greatest(0, least(
      e.share - p_due,
      floor(greatest(p_capacity - p_due, 0) * p_early_share_percent / 100.0)::bigint
    ))
  from (
    select ceil(p_upcoming * p_tick_seconds
      / (p_tick_seconds + extract(epoch from p_early_window)))::bigint as share
  ) e
$$;

-- How a tick splits p_requested connections into invocations: as few as the cap allows, at most
-- p_max_parallel, each given an even share (≤ the cap). Pure.
create or replace function cafe24_private.refresh_tick_split(
  p_requested bigint,
  p_cap integer,
  p_max_parallel integer
)
returns table (invocations integer, per_invocation integer, bound_hit boolean)
language sql
immutable
set search_path = ''
as $$
  select k.n, case when k.n = 0 then null else least(p_cap, ceil(p_requested::numeric / k.n))::integer end,
    k.needed > p_max_parallel
  from (
    select least(ceil(greatest(p_requested, 0)::numeric / p_cap), p_max_parallel)::integer as n,
      ceil(greatest(p_requested, 0)::numeric / p_cap) as needed
  ) k
$$;

-- pg_cron's job, every tick: counts what is due before the next tick, adds early refreshes when
-- there is room (eager), and sends that many connections' worth of cafe24-refresh invocations
-- (call_project_function: Vault, the URL checks, pg_net). Each request's body carries the tick
-- and max_connections; nothing is sent when nothing is due. Returns the tick's id
-- (cafe24_private.refresh_ticks says what it did and why).
create or replace function cafe24_private.invoke_cafe24_refresh()
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_settings cafe24_private.refresh_schedule_settings;
  v_now timestamptz := now();
  v_lookahead interval;
  v_scope cafe24_private.refresh_scope;
  v_capacity bigint;
  v_due bigint;
  v_upcoming bigint;
  v_even_share bigint;
  v_budget bigint := 0;
  v_early bigint := 0;
  v_split record;
  v_tick_id bigint;
  v_call record;
begin
  select * into v_settings from cafe24_private.refresh_schedule_settings where id;
  v_lookahead := make_interval(secs => v_settings.tick_seconds);
  v_capacity := v_settings.per_invocation_cap::bigint * v_settings.max_parallel_invocations;
  v_scope := cafe24_private.tick_scope(v_now, v_lookahead);
  v_due := cafe24_private.count_claimable_in(v_scope);

  if v_scope.policy = 'eager' and v_settings.early_share_percent > 0 and v_due < v_capacity then
    v_upcoming := cafe24_private.count_claimable_in(
      cafe24_private.tick_scope(v_now, v_lookahead + v_settings.early_window));
    select b.even_share, b.budget into v_even_share, v_budget
    from cafe24_private.refresh_tick_early_budget(v_due, v_upcoming, v_capacity,
      v_settings.tick_seconds, v_settings.early_window, v_settings.early_share_percent) b;
    if v_budget > 0 then
      v_early := greatest(0, cafe24_private.count_claimable_in(
        cafe24_private.tick_scope(v_now, v_lookahead, v_settings.early_window,
          v_settings.early_min_token_age),
        v_due + v_budget) - v_due);
    end if;
  end if;

  select * into v_split from cafe24_private.refresh_tick_split(
    v_due + v_early, v_settings.per_invocation_cap, v_settings.max_parallel_invocations);

  insert into cafe24_private.refresh_ticks (
    ticked_at, policy, due, even_share, early, requested, per_invocation_cap,
    max_parallel_invocations, per_invocation, bound_hit, outcome, lookahead, early_window,
    early_min_token_age
  ) values (
    v_now, v_scope.policy, v_due, v_even_share, v_early, v_due + v_early,
    v_settings.per_invocation_cap, v_settings.max_parallel_invocations, v_split.per_invocation,
    v_split.bound_hit, case when v_split.invocations = 0 then 'nothing_due' else 'sent' end,
    v_lookahead,
    case when v_early > 0 then v_settings.early_window end,
    case when v_early > 0 then v_settings.early_min_token_age end
  )
  returning id into v_tick_id;

  -- Called on idle ticks too (with no request to send), so that a missing secret or a bad
  -- project URL is reported every tick, not only once something is due.
  select * into v_call from cafe24_private.call_project_function(
    'cafe24-refresh',
    jsonb_build_object('trigger', 'cron', 'tick', v_tick_id,
      'max_connections', v_split.per_invocation),
    v_split.invocations);
  update cafe24_private.refresh_ticks t
  set invocations = coalesce(cardinality(v_call.request_ids), 0),
      request_ids = v_call.request_ids,
      outcome = case
        when v_call.refusal is not null then 'refused'
        when v_split.invocations = 0 then 'nothing_due'
        else 'sent'
      end,
      reason = v_call.refusal
  where t.id = v_tick_id;
  return v_tick_id;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- A jittered first due time for new connections
-- ---------------------------------------------------------------------------------------------

-- A connection the connect flow has just written (providers.cafe24.connected_at within the last
-- 10 minutes: store_connection sets it) is first due up to first_due_spread earlier than its
-- token's expiry says, drawn at random, never before now. Malls connected in one go then come due
-- over an hour instead of in one minute. Only when tokens arrive from outside a refresh (no run
-- holds the row) and push the due time later; a refresh's own new tokens are never moved.
create or replace function cafe24_private.jitter_first_due()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_spread interval;
  v_connected_at timestamptz;
begin
  if new.row_state <> 'ok' or not isfinite(new.due_at) then
    return new;
  end if;
  if tg_op = 'UPDATE' and (new.due_at <= old.due_at or old.lease_id is not null) then
    return new;
  end if;
  -- The sync trigger writes with INSERT … ON CONFLICT DO UPDATE, which fires the insert trigger
  -- for the proposed row too: an existing row is the update trigger's to judge.
  if tg_op = 'INSERT' and exists (
    select 1 from cafe24_private.connections c where c.auth_settings_id = new.auth_settings_id
  ) then
    return new;
  end if;
  select s.first_due_spread into v_spread from cafe24_private.refresh_schedule_settings s;
  if v_spread is null or v_spread <= interval '0' then
    return new;
  end if;
  select cafe24_private.parse_instant(a.providers -> 'cafe24' -> 'connected_at')
  into v_connected_at
  from public.auth_settings a
  where a.id = new.auth_settings_id;
  if v_connected_at is null or v_connected_at < now() - interval '10 minutes' then
    return new;
  end if;
  new.due_at := greatest(now(), new.due_at - random() * v_spread);
  return new;
end
$$;

drop trigger if exists jitter_first_due_on_insert on cafe24_private.connections;
create trigger jitter_first_due_on_insert
  before insert on cafe24_private.connections
  for each row execute function cafe24_private.jitter_first_due();

drop trigger if exists jitter_first_due_on_update on cafe24_private.connections;
create trigger jitter_first_due_on_update
  before update of due_at on cafe24_private.connections
  for each row when (new.due_at is distinct from old.due_at)
  execute function cafe24_private.jitter_first_due();

-- ---------------------------------------------------------------------------------------------
-- What operators look at
-- ---------------------------------------------------------------------------------------------

-- The backlog now, as the next tick will see it: connections due now (without the tick's
-- lookahead), when the oldest of them became due (its due time less the refresh margin; null
-- when only unknown expiries are due), and active connections whose access token has already
-- expired (always 0 under eager when the schedule keeps up; keep_alive lets idle ones expire).
create or replace function cafe24_private.refresh_backlog()
returns table (
  as_of timestamptz,
  policy text,
  due_now bigint,
  oldest_due_since timestamptz,
  overdue_for interval,
  access_expired bigint
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_scope cafe24_private.refresh_scope := cafe24_private.tick_scope(now(), interval '0');
  v_oldest timestamptz;
begin
  execute format(
    'select min(c.due_at) filter (where c.due_at > ''-infinity'')
     from cafe24_private.connections c where %s and %s',
    cafe24_private.claimable_condition(),
    cafe24_private.scope_condition(v_scope)
  )
  into v_oldest
  using v_scope;
  as_of := v_scope.as_of;
  policy := v_scope.policy;
  due_now := cafe24_private.count_claimable_in(v_scope);
  oldest_due_since := v_oldest - (v_scope.due_before - v_scope.as_of);
  overdue_for := greatest(interval '0', now() - oldest_due_since);
  select count(*) into access_expired
  from cafe24_private.connections c
  where c.row_state = 'ok' and c.status = 'active' and c.access_expires_at < now();
  return next;
end
$$;

-- The daily cleanup of …_cafe24_refresh_schedule.sql, plus the ticks (kept as long as pg_cron's
-- own run details) and calls whose answer never came.
create or replace function cafe24_private.trim_histories(
  p_keep_cron_details interval default interval '7 days',
  p_keep_runs interval default interval '30 days'
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A run that never finished (its function was killed) is marked, not left "running".
  update cafe24_private.refresh_runs
  set status = 'abandoned', finished_at = now()
  where status = 'running' and started_at < now() - interval '1 hour';

  delete from cafe24_private.refresh_runs where started_at < now() - p_keep_runs;
  delete from cafe24_private.refresh_ticks where ticked_at < now() - p_keep_cron_details;
  delete from cafe24_private.project_calls where sent_at < now() - interval '1 day';

  if to_regclass('cron.job_run_details') is not null then
    execute 'delete from cron.job_run_details where end_time < now() - $1' using p_keep_cron_details;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges and the schedule
-- ---------------------------------------------------------------------------------------------

revoke all on table cafe24_private.refresh_schedule_settings
  from public, anon, authenticated, service_role;
revoke all on table cafe24_private.refresh_ticks from public, anon, authenticated, service_role;
revoke all on sequence cafe24_private.refresh_ticks_id_seq
  from public, anon, authenticated, service_role;
grant select on table cafe24_private.refresh_schedule_settings to service_role;
grant select on table cafe24_private.refresh_ticks to service_role;

revoke all on function cafe24_private.refresh_cron_schedule(integer) from public, anon, authenticated;
revoke all on function cafe24_private.pg_cron_takes_seconds() from public, anon, authenticated;
revoke all on function cafe24_private.schedule_refresh_job() from public, anon, authenticated;
revoke all on function cafe24_private.set_refresh_schedule(
  integer, integer, integer, integer, interval, interval, interval
) from public, anon, authenticated, service_role;
revoke all on function cafe24_private.make_scope(
  timestamptz, interval, boolean, text, interval, interval, text, uuid, interval, interval,
  interval, interval, boolean
) from public, anon, authenticated;
revoke all on function cafe24_private.count_claimable_in(cafe24_private.refresh_scope, bigint)
  from public, anon, authenticated;
revoke all on function cafe24_private.start_refresh_run(
  text, text, interval, interval, boolean, text, uuid, text, interval, interval, bigint
) from public, anon, authenticated;
revoke all on function cafe24_private.tick_scope(timestamptz, interval, interval, interval)
  from public, anon, authenticated;
revoke all on function cafe24_private.refresh_tick_early_budget(
  bigint, bigint, bigint, integer, interval, integer
) from public, anon, authenticated;
revoke all on function cafe24_private.refresh_tick_split(bigint, integer, integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.invoke_cafe24_refresh() from public, anon, authenticated;
revoke all on function cafe24_private.jitter_first_due() from public, anon, authenticated;
revoke all on function cafe24_private.refresh_backlog() from public, anon, authenticated;
revoke all on function cafe24_private.trim_histories(interval, interval)
  from public, anon, authenticated;

-- The job, with the settings' tick (re-applying …_cafe24_refresh_schedule.sql sets it back to
-- every 5 minutes; this migration, applied after it, sets the settings' tick again).
select cafe24_private.schedule_refresh_job();
