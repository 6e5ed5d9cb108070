-- A refresh costs the database less.
--
-- A run's scope is made once, when the run starts, and stored on its row (refresh_runs.scope):
-- every claim reads it as it is instead of making it from the row's columns again. Rows of runs
-- started before this (scope null) are made as before, by scope_of_run.
--
-- The claim reads the due index in due order and stops at the first row it can lock: its plan,
-- made once per session, no longer fetches and sorts every due row (bitmap and sequential scans
-- are off in it).
--
-- A refresh no longer reads the providers document to learn whether the grant's scopes changed:
-- the connection row mirrors providers.cafe24.scopes (connections.scopes, kept by the sync
-- trigger and by the refresh that stores them), and the store's hot path compares with it in
-- the row it updates anyway. A row without the mirror yet (every row before this) takes the
-- second pass, which reads providers as before and fills the mirror.

alter table cafe24_private.connections add column if not exists scopes jsonb;

alter table cafe24_private.refresh_runs
  add column if not exists scope cafe24_private.refresh_scope;

create or replace function cafe24_private.sync_connection()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_entry jsonb := case
    when jsonb_typeof(new.providers) = 'object' and jsonb_typeof(new.providers -> 'cafe24') = 'object'
      then new.providers -> 'cafe24'
  end;
  v_old_entry jsonb;
  v_copying boolean :=
    coalesce(current_setting('cafe24_private.writing_token_copy', true) = 'on', false);
  v_moved jsonb := '{}'::jsonb;
  v_key text;
  v_current cafe24_private.connections%rowtype;
  v_providers jsonb := new.providers;
  v_row_state text;
  v_mall_id text;
  v_access_token text;
  v_refresh_token text;
  v_access_expires_at timestamptz;
  v_refresh_expires_at timestamptz;
  v_new_credentials boolean;
begin
  if tg_op = 'UPDATE' and jsonb_typeof(old.providers) = 'object' then
    v_old_entry := old.providers -> 'cafe24';
  end if;
  foreach v_key in array cafe24_private.cafe24_token_keys() loop
    if jsonb_typeof(v_entry -> v_key) in ('string', 'null')
      and (v_entry -> v_key) is distinct from (v_old_entry -> v_key)
      and not (v_copying and v_key in ('access_token', 'expires_at'))
    then
      v_moved := v_moved || jsonb_build_object(v_key, v_entry -> v_key);
    end if;
  end loop;
  if (v_entry ? 'refresh_token') and jsonb_typeof(v_entry -> 'refresh_token') <> 'null'
    and not (jsonb_typeof(v_entry -> 'refresh_token') = 'string'
      and v_entry ->> 'refresh_token' <> ''
      and jsonb_typeof(v_entry -> 'mall_id') = 'string' and v_entry ->> 'mall_id' <> '')
  then
    v_moved := '{}'::jsonb;
  end if;
  if v_moved <> '{}'::jsonb then
    v_entry := v_entry - array(select jsonb_object_keys(v_moved));
    v_providers := jsonb_set(v_providers, '{cafe24}', v_entry);
  end if;

  if tg_op = 'UPDATE' then
    select * into v_current
    from cafe24_private.connections c
    where c.auth_settings_id = new.id
    for update;
  end if;

  if v_moved ? 'refresh_token' then
    v_access_token := v_moved ->> 'access_token';
    v_refresh_token := v_moved ->> 'refresh_token';
    v_access_expires_at := cafe24_private.parse_instant(v_moved -> 'expires_at');
    v_refresh_expires_at := cafe24_private.parse_instant(v_moved -> 'refresh_token_expires_at');
  elsif coalesce(jsonb_typeof(v_providers -> 'cafe24'), 'null') = 'null'
    and jsonb_typeof(v_providers) = 'object'
  then
    -- No providers.cafe24 any more: the connection, and its pair, are gone.
    null;
  else
    v_access_token := case when v_moved ? 'access_token' then v_moved ->> 'access_token'
      else v_current.access_token end;
    v_refresh_token := v_current.refresh_token;
    v_access_expires_at := case when v_moved ? 'expires_at'
      then cafe24_private.parse_instant(v_moved -> 'expires_at')
      else v_current.access_expires_at end;
    v_refresh_expires_at := case when v_moved ? 'refresh_token_expires_at'
      then cafe24_private.parse_instant(v_moved -> 'refresh_token_expires_at')
      else v_current.refresh_expires_at end;
  end if;

  v_row_state := cafe24_private.classify_connection(v_providers, v_refresh_token);
  v_mall_id := case when v_row_state in ('ok', 'missing_keys') then v_entry ->> 'mall_id' end;
  v_new_credentials := v_current.auth_settings_id is null
    or v_refresh_token is distinct from v_current.refresh_token
    or v_mall_id is distinct from v_current.mall_id;

  if v_current.auth_settings_id is null or v_new_credentials
    or v_moved <> '{}'::jsonb
    or new.user_id is distinct from v_current.user_id
    or v_row_state is distinct from v_current.row_state
    or (v_entry ->> 'connected_at') is distinct from v_current.connected_at
    or (v_entry -> 'scopes') is distinct from v_current.scopes
  then
    insert into cafe24_private.connections as c (
      auth_settings_id, user_id, mall_id, row_state,
      access_expires_at, refresh_expires_at, due_at,
      access_token, refresh_token, connected_at, scopes
    ) values (
      new.id, new.user_id, v_mall_id, v_row_state,
      v_access_expires_at, v_refresh_expires_at,
      cafe24_private.refresh_due_at(v_access_expires_at, v_refresh_expires_at),
      v_access_token, v_refresh_token, v_entry ->> 'connected_at', v_entry -> 'scopes'
    )
    on conflict (auth_settings_id) do update set
      user_id = excluded.user_id,
      mall_id = excluded.mall_id,
      row_state = excluded.row_state,
      access_expires_at = excluded.access_expires_at,
      refresh_expires_at = excluded.refresh_expires_at,
      due_at = excluded.due_at,
      access_token = excluded.access_token,
      refresh_token = excluded.refresh_token,
      connected_at = excluded.connected_at,
      scopes = excluded.scopes,
      token_version = c.token_version + case when v_new_credentials then 1 else 0 end,
      status = case when v_new_credentials then 'active' else c.status end,
      consecutive_failures = case when v_new_credentials then 0 else c.consecutive_failures end,
      next_attempt_at = case when v_new_credentials then null else c.next_attempt_at end,
      lease_id = case when v_new_credentials then null else c.lease_id end,
      lease_expires_at = case when v_new_credentials then null else c.lease_expires_at end,
      in_flight_since = case when v_new_credentials then null else c.in_flight_since end,
      answer_possibly_lost_at =
        case when v_new_credentials then null else c.answer_possibly_lost_at end,
      last_error_code = case when v_new_credentials then null else c.last_error_code end,
      last_error_message = case when v_new_credentials then null else c.last_error_message end,
      last_error_at = case when v_new_credentials then null else c.last_error_at end,
      updated_at = now();
  end if;

  if tg_op = 'INSERT' then
    if v_moved <> '{}'::jsonb then
      update public.auth_settings s set providers = v_providers where s.id = new.id;
    end if;
    return null;
  end if;
  new.providers := v_providers;
  return new;
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
