-- The refresh machinery: per-connection refresh state, run history, and the SQL functions that
-- are the only way that state changes. Everything lives in cafe24_private, a schema the Data API
-- does not expose; the Edge Functions reach it over SUPABASE_DB_URL.
--
-- Why the care: Cafe24 rotates the refresh token on every refresh and the old one dies at once.
-- Two workers refreshing one mall, or a new pair that is not written, disconnects the mall until
-- its owner logs in again. So: a lease per connection (claim), a compare-and-swap on the refresh
-- token that was used (store), and failures that never touch the tokens (record failure).

create schema if not exists cafe24_private;
revoke all on schema cafe24_private from public;
revoke all on schema cafe24_private from anon, authenticated;
grant usage on schema cafe24_private to service_role;

-- One row per auth_settings row, kept in step by a trigger. It mirrors what the refresher needs
-- from providers.cafe24 in plain, indexable columns, so finding due connections reads an index
-- instead of parsing every row's JSON.
create table if not exists cafe24_private.connections (
  auth_settings_id uuid primary key references public.auth_settings (id) on delete cascade,
  user_id uuid,
  mall_id text,
  -- What the row holds: ok | no_cafe24 | missing_keys | malformed. Only 'ok' rows are refreshed.
  row_state text not null check (row_state in ('ok', 'no_cafe24', 'missing_keys', 'malformed')),
  -- active: refreshed on schedule; reconnect_required: Cafe24 refused the refresh token, the owner
  -- must connect again; disconnected: the tokens were removed on purpose (the owner disconnected,
  -- or another account connected the same mall). last_error_code says which.
  status text not null default 'active'
    check (status in ('active', 'reconnect_required', 'disconnected')),
  access_expires_at timestamptz,
  refresh_expires_at timestamptz,
  -- When a refresh becomes necessary, before the refresh margin: the earlier of the access token's
  -- expiry and 3 days before the refresh token's; -infinity when the expiry is unknown.
  due_at timestamptz not null default '-infinity',
  -- The lease: who is refreshing this connection and until when.
  lease_id uuid,
  lease_expires_at timestamptz,
  -- Set when a refresh request is about to be sent, cleared when its outcome is known. Still set
  -- at the next claim means the earlier attempt died (crash, kill) without an answer.
  in_flight_since timestamptz,
  -- The last claim. A run claims only rows not claimed since it started, so a forced run
  -- refreshes each connection once instead of going round again.
  last_claimed_at timestamptz,
  -- An earlier attempt whose answer never arrived (crash, timeout, 5xx, malformed 200): Cafe24 may
  -- have rotated the token then. If the token is later rejected, that is why.
  answer_possibly_lost_at timestamptz,
  consecutive_failures integer not null default 0,
  next_attempt_at timestamptz,
  last_error_code text,
  last_error_message text,
  last_error_at timestamptz,
  last_refreshed_at timestamptz,
  updated_at timestamptz not null default now()
) with (fillfactor = 80);

-- Every claim and store rewrites a row without touching an indexed column; the free space on each
-- page lets those updates stay on the page (HOT) instead of adding index entries each time.
alter table cafe24_private.connections set (fillfactor = 80);

comment on table cafe24_private.connections is
  'Refresh state per public.auth_settings row (maintained by trigger). Only the cafe24_private functions change it.';

-- The claim walks this index from the most overdue connection; only refreshable rows are in it.
create index if not exists connections_due_idx on cafe24_private.connections (due_at)
  where row_state = 'ok' and status = 'active';
create index if not exists connections_mall_id_idx on cafe24_private.connections (mall_id);
create index if not exists connections_user_id_idx on cafe24_private.connections (user_id);

create table if not exists cafe24_private.refresh_runs (
  id uuid primary key default gen_random_uuid(),
  trigger text not null check (trigger in ('cron', 'manual', 'user', 'cli')),
  mode text not null check (mode in ('sync', 'async')),
  filters jsonb not null default '{}'::jsonb,
  status text not null default 'running'
    check (status in ('running', 'finished', 'failed', 'abandoned')),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  summary jsonb
);

create index if not exists refresh_runs_started_at_idx on cafe24_private.refresh_runs (started_at desc);

-- ---------------------------------------------------------------------------------------------
-- Reading providers.cafe24
-- ---------------------------------------------------------------------------------------------

-- Classifies a providers document for the refresher. Non-string or empty keys are not repaired
-- or guessed at: the row is skipped and counted, and its tokens are left exactly as they are.
create or replace function cafe24_private.classify_providers(p_providers jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when jsonb_typeof(p_providers) is distinct from 'object' then 'malformed'
    when coalesce(jsonb_typeof(p_providers -> 'cafe24'), 'null') = 'null' then 'no_cafe24'
    when jsonb_typeof(p_providers -> 'cafe24') <> 'object' then 'malformed'
    when jsonb_typeof(p_providers -> 'cafe24' -> 'mall_id') not in ('string', 'null')
      or jsonb_typeof(p_providers -> 'cafe24' -> 'refresh_token') not in ('string', 'null')
      then 'malformed'
    when coalesce(p_providers -> 'cafe24' ->> 'mall_id', '') = ''
      or coalesce(p_providers -> 'cafe24' ->> 'refresh_token', '') = ''
      then 'missing_keys'
    else 'ok'
  end
$$;

-- Reads an instant this project wrote (ISO-8601 with an explicit offset). Anything else,
-- including Cafe24's offset-less Korea-time strings stored by older code, is "unknown", which
-- makes the connection due: one refresh later it carries a well-formed instant.
create or replace function cafe24_private.parse_instant(p_value jsonb)
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  if jsonb_typeof(p_value) is distinct from 'string'
    or (p_value #>> '{}') !~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$'
  then
    return null;
  end if;
  return (p_value #>> '{}')::timestamptz;
exception when others then
  return null;
end
$$;

create or replace function cafe24_private.refresh_due_at(
  p_access_expires_at timestamptz,
  p_refresh_expires_at timestamptz
)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select case
    when p_access_expires_at is null then '-infinity'::timestamptz
    else least(p_access_expires_at, p_refresh_expires_at - interval '3 days')
  end
$$;

-- ---------------------------------------------------------------------------------------------
-- Keeping connections in step with auth_settings
-- ---------------------------------------------------------------------------------------------

-- Whoever writes providers (a refresh, the OAuth callback, the app, an operator in Studio), the
-- refresh state follows. A new refresh token or mall means a new connection: its failures,
-- backoff, reconnect_required status and lease belong to the old one and are cleared.
create or replace function cafe24_private.sync_connection()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_row_state text := cafe24_private.classify_providers(new.providers);
  v_entry jsonb := case when v_row_state in ('ok', 'missing_keys') then new.providers -> 'cafe24' end;
  v_old_entry jsonb;
  v_access_expires_at timestamptz := cafe24_private.parse_instant(v_entry -> 'expires_at');
  v_refresh_expires_at timestamptz :=
    cafe24_private.parse_instant(v_entry -> 'refresh_token_expires_at');
  v_new_credentials boolean;
begin
  if tg_op = 'UPDATE' and jsonb_typeof(old.providers) = 'object' then
    v_old_entry := old.providers -> 'cafe24';
  end if;
  v_new_credentials := tg_op = 'INSERT'
    or (v_old_entry -> 'refresh_token') is distinct from (v_entry -> 'refresh_token')
    or (v_old_entry -> 'mall_id') is distinct from (v_entry -> 'mall_id');

  insert into cafe24_private.connections as c (
    auth_settings_id, user_id, mall_id, row_state,
    access_expires_at, refresh_expires_at, due_at
  ) values (
    new.id, new.user_id, v_entry ->> 'mall_id', v_row_state,
    v_access_expires_at, v_refresh_expires_at,
    cafe24_private.refresh_due_at(v_access_expires_at, v_refresh_expires_at)
  )
  on conflict (auth_settings_id) do update set
    user_id = excluded.user_id,
    mall_id = excluded.mall_id,
    row_state = excluded.row_state,
    access_expires_at = excluded.access_expires_at,
    refresh_expires_at = excluded.refresh_expires_at,
    due_at = excluded.due_at,
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
  return null;
end
$$;

drop trigger if exists sync_cafe24_connection on public.auth_settings;
create trigger sync_cafe24_connection
  after insert or update of providers, user_id on public.auth_settings
  for each row execute function cafe24_private.sync_connection();

-- Rows that existed before this migration get their state now (idempotent: re-running only
-- refreshes the mirrored columns).
update public.auth_settings set providers = providers
where not exists (
  select 1 from cafe24_private.connections c where c.auth_settings_id = auth_settings.id
);

-- ---------------------------------------------------------------------------------------------
-- The state transitions the refresher uses
-- ---------------------------------------------------------------------------------------------

-- Counts every connection in scope by the one reason it will or will not be refreshed now. The
-- categories are exclusive and checked in this order, so the counts add up to `scanned`.
create or replace function cafe24_private.census(
  p_as_of timestamptz,
  p_refresh_margin interval,
  p_force boolean default false,
  p_mall_id text default null,
  p_user_id uuid default null
)
returns table (
  scanned bigint,
  no_cafe24 bigint,
  missing_keys bigint,
  malformed bigint,
  reconnect_required bigint,
  leased bigint,
  backing_off bigint,
  not_due bigint,
  due bigint
)
language plpgsql
stable
set search_path = ''
as $$
begin
  -- Built per call, like the claim, so that a mall's or a user's census reads its index instead
  -- of every row.
  return query execute format(
    $q$
      with scoped as (
        select
          c.row_state,
          c.status,
          c.lease_expires_at > $1 as is_leased,
          c.next_attempt_at > $1 as is_backing_off,
          c.due_at > $1 + $2 and not $3 as is_not_due
        from cafe24_private.connections c
        where true %s %s
      )
      select
        count(*),
        count(*) filter (where row_state = 'no_cafe24'),
        count(*) filter (where row_state = 'missing_keys'),
        count(*) filter (where row_state = 'malformed'),
        count(*) filter (where row_state = 'ok' and status = 'reconnect_required'),
        count(*) filter (where row_state = 'ok' and status = 'active' and is_leased),
        count(*) filter (where row_state = 'ok' and status = 'active'
          and not coalesce(is_leased, false) and is_backing_off),
        count(*) filter (where row_state = 'ok' and status = 'active'
          and not coalesce(is_leased, false) and not coalesce(is_backing_off, false) and is_not_due),
        count(*) filter (where row_state = 'ok' and status = 'active'
          and not coalesce(is_leased, false) and not coalesce(is_backing_off, false)
          and not is_not_due)
      from scoped
    $q$,
    case when p_mall_id is not null then 'and c.mall_id = $4' else '' end,
    case when p_user_id is not null then 'and c.user_id = $5' else '' end
  )
  using p_as_of, p_refresh_margin, p_force, p_mall_id, p_user_id;
end
$$;

-- Claims up to p_limit due connections for p_lease_id, most overdue first, skipping rows another
-- worker holds (FOR UPDATE SKIP LOCKED, then a lease that outlives the transaction). Returns the
-- refresh token to use. Every time comparison uses p_as_of, the run's start, so a run only ever
-- claims what its census counted as due.
create or replace function cafe24_private.claim_due_connections(
  p_lease_id uuid,
  p_limit integer,
  p_lease_duration interval,
  p_refresh_margin interval,
  p_as_of timestamptz,
  p_force boolean default false,
  p_mall_id text default null,
  p_user_id uuid default null
)
returns table (
  auth_settings_id uuid,
  mall_id text,
  refresh_token text,
  consecutive_failures integer,
  due_reason text,
  answer_possibly_lost boolean
)
language plpgsql
set search_path = ''
as $$
declare
  -- force lifts "not due" only: leases, backoff and reconnect_required still hold.
  v_due_before timestamptz :=
    case when p_force then 'infinity'::timestamptz else p_as_of + p_refresh_margin end;
  v_ids uuid[];
begin
  -- Built per call so that each filter reaches the planner as a constant and the matching index
  -- (due, mall_id or user_id) is used; a generic plan would scan every row.
  execute format(
    $q$
      select array_agg(auth_settings_id) from (
        select c.auth_settings_id
        from cafe24_private.connections c
        where c.row_state = 'ok' and c.status = 'active'
          and c.due_at <= $1
          and (c.lease_expires_at is null or c.lease_expires_at <= $2)
          and (c.next_attempt_at is null or c.next_attempt_at <= $2)
          and (c.last_claimed_at is null or c.last_claimed_at < $2)
          %s %s
        order by c.due_at
        limit $3
        for update skip locked
      ) picked
    $q$,
    case when p_mall_id is not null then 'and c.mall_id = $4' else '' end,
    case when p_user_id is not null then 'and c.user_id = $5' else '' end
  )
  into v_ids
  using v_due_before, p_as_of, p_limit, p_mall_id, p_user_id;

  if v_ids is null then
    return;
  end if;

  return query
  with claimed as (
    update cafe24_private.connections c
    set lease_id = p_lease_id,
        lease_expires_at = now() + p_lease_duration,
        answer_possibly_lost_at = coalesce(c.answer_possibly_lost_at, c.in_flight_since),
        in_flight_since = now(),
        last_claimed_at = now(),
        updated_at = now()
    where c.auth_settings_id = any (v_ids)
    returning c.auth_settings_id, c.mall_id, c.consecutive_failures, c.access_expires_at,
      c.refresh_expires_at, c.answer_possibly_lost_at
  )
  select
    k.auth_settings_id,
    k.mall_id,
    s.providers -> 'cafe24' ->> 'refresh_token',
    k.consecutive_failures,
    case
      when p_force and not (
        k.access_expires_at is null
        or k.access_expires_at <= p_as_of + p_refresh_margin
        or k.refresh_expires_at <= p_as_of + p_refresh_margin + interval '3 days'
      ) then 'forced'
      when k.access_expires_at is null then 'expiry_unknown'
      when k.access_expires_at <= p_as_of + p_refresh_margin then 'access_token_expiring'
      else 'refresh_token_expiring'
    end,
    k.answer_possibly_lost_at is not null
  from claimed k
  join public.auth_settings s on s.id = k.auth_settings_id;
end
$$;

-- Counts what a run left unclaimed that it would have claimed (for `remaining`).
create or replace function cafe24_private.count_claimable(
  p_refresh_margin interval,
  p_as_of timestamptz,
  p_force boolean default false,
  p_mall_id text default null,
  p_user_id uuid default null
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
    $q$
      select count(*)
      from cafe24_private.connections c
      where c.row_state = 'ok' and c.status = 'active'
        and c.due_at <= $1
        and (c.lease_expires_at is null or c.lease_expires_at <= $2)
        and (c.next_attempt_at is null or c.next_attempt_at <= $2)
        and (c.last_claimed_at is null or c.last_claimed_at < $2)
        %s %s
    $q$,
    case when p_mall_id is not null then 'and c.mall_id = $3' else '' end,
    case when p_user_id is not null then 'and c.user_id = $4' else '' end
  )
  into v_count
  using case when p_force then 'infinity'::timestamptz else p_as_of + p_refresh_margin end,
    p_as_of, p_mall_id, p_user_id;
  return v_count;
end
$$;

-- A pair worth storing: non-empty access and refresh tokens and an expiry this project can read.
-- The last line of defence: whatever the caller parsed, SQL never writes a pair that would erase
-- or blank a token.
create or replace function cafe24_private.is_complete_token_pair(p_tokens jsonb)
returns boolean
language sql
stable
set search_path = ''
as $$
  select jsonb_typeof(p_tokens) = 'object'
    and jsonb_typeof(p_tokens -> 'refresh_token') = 'string'
    and jsonb_typeof(p_tokens -> 'access_token') = 'string'
    and p_tokens ->> 'refresh_token' <> ''
    and p_tokens ->> 'access_token' <> ''
    and cafe24_private.parse_instant(p_tokens -> 'expires_at') is not null
$$;

-- Writes a refreshed pair the moment Cafe24 returns it. Compare-and-swap on the refresh token
-- that was sent: if the row now holds another token (the owner reconnected meanwhile), the newer
-- tokens stay and this returns 'superseded'. The pair is merged into providers.cafe24 here, in
-- SQL, so every other key (scope, shop_no, board_no, …) and every other provider survives.
-- The sync trigger then clears failures, backoff and the lease: the new token is a new start.
create or replace function cafe24_private.store_refreshed_tokens(
  p_auth_settings_id uuid,
  p_used_refresh_token text,
  p_tokens jsonb
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_stored boolean;
begin
  if not cafe24_private.is_complete_token_pair(p_tokens) then
    raise exception 'store_refreshed_tokens: tokens must carry non-empty access_token, refresh_token and an ISO-8601 expires_at'
      using errcode = '22023';
  end if;

  update public.auth_settings s
  set providers = jsonb_set(s.providers, '{cafe24}', (s.providers -> 'cafe24') || p_tokens),
      updated_at = now()
  where s.id = p_auth_settings_id
    and jsonb_typeof(s.providers -> 'cafe24') = 'object'
    and s.providers -> 'cafe24' ->> 'refresh_token' = p_used_refresh_token
  returning true into v_stored;

  if v_stored then
    update cafe24_private.connections
    set last_refreshed_at = now()
    where auth_settings_id = p_auth_settings_id;
    return 'stored';
  end if;

  -- Already written: this is a retry of a store whose answer the caller never received.
  if exists (
    select 1 from public.auth_settings s
    where s.id = p_auth_settings_id
      and s.providers -> 'cafe24' ->> 'refresh_token' = p_tokens ->> 'refresh_token'
  ) then
    return 'stored';
  end if;

  -- Not ours to write any more; let go of the lease without touching the newer state.
  update cafe24_private.connections
  set lease_id = null, lease_expires_at = null, in_flight_since = null, updated_at = now()
  where auth_settings_id = p_auth_settings_id;
  return 'superseded';
end
$$;

-- Records a failed refresh. Never touches the tokens. Returns:
--   'already_rotated'    the row holds another refresh token now (another worker or a reconnect
--                        won): not a failure of this connection;
--   'lease_lost'         this worker's lease ran out and someone else holds the row: nothing
--                        is recorded;
--   'reconnect_required' p_permanent: no more automatic attempts until the mall reconnects;
--   'retry_scheduled'    transient: next attempt at p_next_attempt_at.
-- p_outcome_unknown: the request may have reached Cafe24 (timeout, reset, 5xx, malformed 200),
-- so Cafe24 may have rotated the token; remembered to explain a later rejection.
create or replace function cafe24_private.record_refresh_failure(
  p_auth_settings_id uuid,
  p_lease_id uuid,
  p_used_refresh_token text,
  p_error_code text,
  p_error_message text,
  p_permanent boolean,
  p_outcome_unknown boolean,
  p_next_attempt_at timestamptz
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_current_token text;
  v_connection cafe24_private.connections%rowtype;
begin
  select * into v_connection
  from cafe24_private.connections
  where auth_settings_id = p_auth_settings_id
  for update;

  select s.providers -> 'cafe24' ->> 'refresh_token' into v_current_token
  from public.auth_settings s
  where s.id = p_auth_settings_id;

  if v_current_token is distinct from p_used_refresh_token then
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null, updated_at = now()
    where auth_settings_id = p_auth_settings_id and lease_id = p_lease_id;
    return 'already_rotated';
  end if;

  if v_connection.lease_id is distinct from p_lease_id then
    return 'lease_lost';
  end if;

  update cafe24_private.connections
  set status = case when p_permanent then 'reconnect_required' else status end,
      consecutive_failures = consecutive_failures + 1,
      next_attempt_at = case when p_permanent then null else p_next_attempt_at end,
      last_error_code = p_error_code,
      last_error_message = left(p_error_message, 300),
      last_error_at = now(),
      answer_possibly_lost_at = case
        when p_outcome_unknown then coalesce(answer_possibly_lost_at, in_flight_since, now())
        else answer_possibly_lost_at
      end,
      in_flight_since = null,
      lease_id = null,
      lease_expires_at = null,
      updated_at = now()
  where auth_settings_id = p_auth_settings_id;

  return case when p_permanent then 'reconnect_required' else 'retry_scheduled' end;
end
$$;

-- What settling a connection returns: the outcome, and the next connection claimed in the same
-- round trip (all null when none was).
do $$
begin
  if to_regtype('cafe24_private.settled_step') is null then
    create type cafe24_private.settled_step as (
      outcome text,
      next_auth_settings_id uuid,
      next_mall_id text,
      next_refresh_token text,
      next_consecutive_failures integer,
      next_due_reason text,
      next_answer_possibly_lost boolean
    );
  end if;
end
$$;

-- A settle outcome followed by the next claim (when p_claim and one is due), as one row; the
-- claim columns are null when nothing was claimed.
create or replace function cafe24_private.with_next_claim(
  p_outcome text,
  p_claim boolean,
  p_lease_id uuid,
  p_lease_duration interval,
  p_refresh_margin interval,
  p_as_of timestamptz,
  p_force boolean,
  p_mall_id text,
  p_user_id uuid
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
as $$
begin
  if p_claim then
    return query
    select p_outcome, c.*
    from cafe24_private.claim_due_connections(
      p_lease_id, 1, p_lease_duration, p_refresh_margin, p_as_of, p_force, p_mall_id, p_user_id
    ) c;
    if found then
      return;
    end if;
  end if;
  return query select p_outcome, null::uuid, null::text, null::text, null::integer, null::text,
    null::boolean;
end
$$;

-- The refresher's usual step, in one round trip: settle the connection it holds (store the new
-- pair, or record the failure) and, when p_claim, claim its next one exactly as
-- claim_due_connections does. The first row carries the settle outcome; the claim columns are
-- null when nothing was claimed.
create or replace function cafe24_private.store_refreshed_tokens_and_claim(
  p_auth_settings_id uuid,
  p_used_refresh_token text,
  p_tokens jsonb,
  p_claim boolean,
  p_lease_id uuid,
  p_lease_duration interval,
  p_refresh_margin interval,
  p_as_of timestamptz,
  p_force boolean default false,
  p_mall_id text default null,
  p_user_id uuid default null
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
as $$
declare
  v_outcome text :=
    cafe24_private.store_refreshed_tokens(p_auth_settings_id, p_used_refresh_token, p_tokens);
begin
  return query select * from cafe24_private.with_next_claim(
    v_outcome, p_claim, p_lease_id, p_lease_duration, p_refresh_margin, p_as_of, p_force,
    p_mall_id, p_user_id
  );
end
$$;

create or replace function cafe24_private.record_refresh_failure_and_claim(
  p_auth_settings_id uuid,
  p_lease_id uuid,
  p_used_refresh_token text,
  p_error_code text,
  p_error_message text,
  p_permanent boolean,
  p_outcome_unknown boolean,
  p_next_attempt_at timestamptz,
  p_claim boolean,
  p_lease_duration interval,
  p_refresh_margin interval,
  p_as_of timestamptz,
  p_force boolean default false,
  p_mall_id text default null,
  p_user_id uuid default null
)
returns setof cafe24_private.settled_step
language plpgsql
set search_path = ''
as $$
declare
  v_outcome text := cafe24_private.record_refresh_failure(
    p_auth_settings_id, p_lease_id, p_used_refresh_token, p_error_code, p_error_message,
    p_permanent, p_outcome_unknown, p_next_attempt_at
  );
begin
  return query select * from cafe24_private.with_next_claim(
    v_outcome, p_claim, p_lease_id, p_lease_duration, p_refresh_margin, p_as_of, p_force,
    p_mall_id, p_user_id
  );
end
$$;

-- Lets go of leases a run took but did not use (it stopped for time before sending).
create or replace function cafe24_private.release_leases(p_lease_id uuid, p_auth_settings_ids uuid[])
returns integer
language sql
set search_path = ''
as $$
  with released as (
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null, updated_at = now()
    where lease_id = p_lease_id and auth_settings_id = any (p_auth_settings_ids)
    returning 1
  )
  select count(*)::integer from released
$$;

create or replace function cafe24_private.start_refresh_run(
  p_trigger text,
  p_mode text,
  p_filters jsonb default '{}'::jsonb
)
returns uuid
language sql
set search_path = ''
as $$
  insert into cafe24_private.refresh_runs (trigger, mode, filters)
  values (p_trigger, p_mode, coalesce(p_filters, '{}'::jsonb))
  returning id
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

-- One row per connection, for Studio, psql and the local dashboard.
create or replace view cafe24_private.connection_status as
select
  c.auth_settings_id,
  c.mall_id,
  s.user_id,
  s.org_id,
  c.row_state,
  c.status,
  c.access_expires_at,
  c.refresh_expires_at,
  c.last_refreshed_at,
  c.last_error_code,
  c.last_error_message,
  c.last_error_at,
  c.consecutive_failures,
  c.next_attempt_at,
  c.lease_expires_at > now() as refreshing_now,
  c.answer_possibly_lost_at
from cafe24_private.connections c
join public.auth_settings s on s.id = c.auth_settings_id;

revoke all on all tables in schema cafe24_private from public, anon, authenticated;
revoke all on all functions in schema cafe24_private from public, anon, authenticated;
grant select on all tables in schema cafe24_private to service_role;
