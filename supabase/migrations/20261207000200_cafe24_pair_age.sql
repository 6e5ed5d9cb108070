-- A pair's age comes from when it was issued, never from its due time (findings 9 and 10 of the
-- resilience review).
--
-- 9: a user's "refresh now" turned into a margin over due_at, and the first-due jitter moves a new
-- connection's due_at up to an hour earlier, so a pair 3 seconds old was rotated again. A user's
-- force is now an early refresh without a window: what is due, and every pair issued at least
-- p_min_token_age (5 minutes) ago.
-- 10: early refreshes required last_refreshed_at and the jitter required connected_at, so pairs
-- stored the original app's way (an imported fleet) were never spread. A pair is now dated by the
-- later of this project's last refresh (for the jitter: of connected_at) and its access token's
-- expiry less the lifetime Cafe24 gives access tokens (access_token_lifetime()).

create or replace function cafe24_private.access_token_lifetime()
returns interval
language sql
immutable
set search_path = ''
as $$
  select interval '2 hours'
$$;

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

drop function if exists cafe24_private.start_refresh_run(
  text, text, interval, interval, boolean, text, uuid, text, interval, interval, bigint
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
  p_tick_id bigint default null,
  p_min_token_age interval default null
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
    case
      when coalesce(p_force, false) then p_min_token_age
      when p_policy = 'eager' then v_early_min_token_age
    end
  )
  returning id into v_id;
  return v_id;
end
$$;

create or replace function cafe24_private.jitter_first_due()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_spread interval;
  v_connected_at timestamptz;
  v_issued_at timestamptz;
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
  v_issued_at := greatest(v_connected_at,
    new.access_expires_at - cafe24_private.access_token_lifetime());
  if v_issued_at is null or v_issued_at < now() - interval '10 minutes' then
    return new;
  end if;
  new.due_at := greatest(now(), new.due_at - random() * v_spread);
  return new;
end
$$;

revoke all on function cafe24_private.access_token_lifetime() from public, anon, authenticated;
revoke all on function cafe24_private.start_refresh_run(
  text, text, interval, interval, boolean, text, uuid, text, interval, interval, bigint, interval
) from public, anon, authenticated;
