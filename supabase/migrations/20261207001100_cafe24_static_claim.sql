-- Static SQL for what a run refreshes, and a cheaper settle.
--
-- The rules become one SQL expression, refresh_verdict(c, s), and the scope another, in_scope(c, s),
-- both inlined by PostgreSQL into the statements that read them. The census, the counts, the
-- claims and the tick's backlog stop building their statement as text and planning it on every
-- call: the claim keeps one statement per scope shape, each planned once per session; the census
-- and the counts, which run once per run or tick, are planned with their scope's values. The
-- settle's helpers are inlined too, and parse_instant stops opening a subtransaction per call.
-- The text-building functions go.

-- The one reason a connection `c` will or will not be refreshed now under the run's scope `s`: the
-- first rule it fails, or 'due' when it passes them all. The reasons are keys of the run
-- summary's skipped_reasons (supabase/functions/_shared/refresh/skip_reasons.ts; a test compares
-- the two).
--
-- malformed: after no_cafe24 and missing_keys, a row that is not 'ok' is malformed.
-- reconnect_required includes 'disconnected': both wait for the owner to connect. leased: another
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

-- Claims up to p_limit due connections for the run, most overdue first, skipping rows another
-- worker holds (FOR UPDATE SKIP LOCKED, then a lease that outlives the transaction). Returns the
-- refresh token to use and the token_version to settle with (the compare-and-swap of
-- store_refreshed_tokens and record_refresh_failure).
--
-- The hot path: every refresh's settle claims the next connection here. One static statement
-- per scope shape (a mall's, a user's, everything else through the due index), each planned
-- once per session (force_generic_plan) instead of on every call; each reads its own index.
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
as $$
declare
  v_scope cafe24_private.refresh_scope := cafe24_private.scope_of_run(p_run_id);
  v_ids uuid[];
begin
  if v_scope.mall_id is not null then
    select array_agg(p.id) into v_ids from (
      select c.auth_settings_id as id from cafe24_private.connections c
      where c.mall_id = v_scope.mall_id
        and cafe24_private.in_scope(c, v_scope)
        and cafe24_private.refresh_verdict(c, v_scope) = 'due'
      order by c.due_at
      limit p_limit
      for update skip locked
    ) p;
  elsif v_scope.user_id is not null then
    select array_agg(p.id) into v_ids from (
      select c.auth_settings_id as id from cafe24_private.connections c
      where c.user_id = v_scope.user_id
        and cafe24_private.in_scope(c, v_scope)
        and cafe24_private.refresh_verdict(c, v_scope) = 'due'
      order by c.due_at
      limit p_limit
      for update skip locked
    ) p;
  else
    select array_agg(p.id) into v_ids from (
      select c.auth_settings_id as id from cafe24_private.connections c
      where c.row_state = 'ok' and c.status = 'active' and c.due_at <= v_scope.claim_before
        and cafe24_private.in_scope(c, v_scope)
        and cafe24_private.refresh_verdict(c, v_scope) = 'due'
      order by c.due_at
      limit p_limit
      for update skip locked
    ) p;
  end if;
  if v_ids is null then
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

-- Claims one named connection for the run, if the run's rules say it is due: the verdict comes
-- from refresh_verdict, the same rules the census and claim_due_pairs read,
-- under the run's scope (a token run's margin is the validity its caller asked for). The row is
-- locked first, so two callers racing for one connection queue here and the second sees the
-- first one's lease ('leased'). The lease is the one claim_due_connections takes (the same
-- columns and values; a test compares claim_connection with claim_due_connections, which wrap
-- these two). Returns the verdict and, when it is 'due', the
-- claimed connection with the refresh token to send and its token_version; no row when the
-- connection does not exist.
create or replace function cafe24_private.claim_connection_pair(
  p_run_id uuid,
  p_auth_settings_id uuid
)
returns table (
  verdict text,
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
  v_verdict text;
begin
  perform 1 from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
  for update;
  if not found then
    return;
  end if;

  -- A statement of its own after the lock, so it reads the row as the previous holder left it.
  select cafe24_private.refresh_verdict(c, v_scope) into v_verdict
  from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id;

  if v_verdict <> 'due' then
    return query select v_verdict, null::uuid, null::text, null::text, null::integer,
      null::boolean, null::bigint;
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
    where c.auth_settings_id = p_auth_settings_id
    returning c.auth_settings_id, c.mall_id, c.refresh_token, c.consecutive_failures,
      c.answer_possibly_lost_at, c.token_version
  )
  select
    'due'::text,
    k.auth_settings_id,
    k.mall_id,
    k.refresh_token,
    k.consecutive_failures,
    k.answer_possibly_lost_at is not null,
    k.token_version
  from claimed k;
end
$$;

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
  select min(c.due_at) filter (where c.due_at > '-infinity') into v_oldest
  from cafe24_private.connections c
  where c.row_state = 'ok' and c.status = 'active' and c.due_at <= v_scope.claim_before
    and cafe24_private.refresh_verdict(c, v_scope) = 'due';
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

-- Reads an instant this project wrote (ISO-8601 with an explicit offset). Anything else,
-- including offset-less Korea-time strings as Cafe24 writes them, is "unknown", which makes the
-- connection due: one refresh later it carries a well-formed instant. Never raises: the pattern
-- admits only values the cast accepts, and a day its month does not have (2026-02-30) is unknown
-- too. One SQL expression without a SET clause, inlined into the statements that read it: every
-- store reads two, and a PL/pgSQL exception handler here would cost each of them a
-- subtransaction.
create or replace function cafe24_private.parse_instant(p_value jsonb)
returns timestamptz
language sql
stable
as $$
  select case
    when jsonb_typeof(p_value) is distinct from 'string'
      or (p_value #>> '{}') !~ '^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?(Z|[+-](0\d|1[0-5])(:?[0-5]\d)?)$'
      then null
    when extract(day from pg_catalog.make_date(substr(p_value #>> '{}', 1, 4)::integer,
        substr(p_value #>> '{}', 6, 2)::integer, 1) + (substr(p_value #>> '{}', 9, 2)::integer - 1))
      <> substr(p_value #>> '{}', 9, 2)::integer
      then null
    else (p_value #>> '{}')::timestamptz
  end
$$;

-- When a connection becomes due (connections.due_at): the earlier of the access token's expiry
-- and 3 days before the refresh token's; -infinity (due at once) when the access expiry is
-- unknown. Inlined (no SET clause: it names nothing through search_path) into the statements that
-- write due_at.
create or replace function cafe24_private.refresh_due_at(
  p_access_expires_at timestamptz,
  p_refresh_expires_at timestamptz
)
returns timestamptz
language sql
stable
as $$
  select case
    when p_access_expires_at is null then '-infinity'::timestamptz
    else least(p_access_expires_at, p_refresh_expires_at - interval '3 days')
  end
$$;

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

-- Writes a refreshed pair the moment Cafe24 returns it, into the connection's private row and
-- nowhere else: the hot path is one narrow update that fires no trigger doing work (the events
-- and jitter triggers' WHEN clauses leave a refresh out). Compare-and-swap on the token_version
-- the claim returned: if the row now holds another pair (the owner reconnected or disconnected
-- meanwhile), the newer state stays and the outcome is 'superseded'. The new pair is a new start:
-- failures, backoff and the lease are cleared. providers.cafe24 is written only when the answer's
-- scopes differ from the ones it holds (the grant changed), or with p_plaintext_copy
-- (CAFE24_PLAINTEXT_TOKEN_COPY), which also copies the access token and its expiry there, in the
-- same transaction, for apps that read them there; never the refresh token. The tokens arrive
-- sealed; the copy is p_tokens.plaintext_access_token, which the private row never stores. With p_claim_next,
-- the run's next connection is claimed in the same round trip.
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
  v_stored boolean;
  v_write_providers boolean := false;
  v_outcome text;
begin
  if not cafe24_private.is_complete_token_pair(p_tokens) then
    raise exception 'store_refreshed_tokens: tokens must carry non-empty access_token, refresh_token and an ISO-8601 expires_at'
      using errcode = '22023';
  end if;

  -- providers.cafe24 is written only for the copy or when the answer's scopes differ from the
  -- ones it holds (the grant changed). Its row is then locked first: every writer of providers
  -- takes the auth_settings row before the connection's (the sync trigger), and so does this.
  if p_plaintext_copy or (p_tokens ? 'scopes' and exists (
    select 1 from public.auth_settings s
    where s.id = p_auth_settings_id
      and jsonb_typeof(s.providers -> 'cafe24') = 'object'
      and (s.providers -> 'cafe24' -> 'scopes') is distinct from (p_tokens -> 'scopes')
  )) then
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
      updated_at = now()
  where c.auth_settings_id = p_auth_settings_id
    and c.token_version = p_token_version
  returning true into v_stored;

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

drop function if exists cafe24_private.claim_candidates_query(cafe24_private.refresh_scope);
drop function if exists cafe24_private.verdict_expression();
drop function if exists cafe24_private.claimable_condition();
drop function if exists cafe24_private.scope_condition(cafe24_private.refresh_scope);
drop function if exists cafe24_private.refresh_rules();

revoke all on function cafe24_private.refresh_verdict(
  cafe24_private.connections, cafe24_private.refresh_scope
) from public, anon, authenticated;
revoke all on function cafe24_private.in_scope(
  cafe24_private.connections, cafe24_private.refresh_scope
) from public, anon, authenticated;
