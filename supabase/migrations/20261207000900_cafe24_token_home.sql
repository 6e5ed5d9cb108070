-- The private connection row is the one home of a connection's tokens and their expiries, and a
-- refresh writes that one narrow row (cafe24_private.connections, 20_connections.sql):
--
-- * connections gets the pair (access_token, refresh_token), token_version (counts the pairs the
--   row has held; the settle and the conditional disconnects compare it instead of token text)
--   and connected_at (providers.cafe24.connected_at as the sync trigger last saw it).
-- * providers.cafe24 keeps what identifies the connection and is written only when the
--   connection changes. Tokens written there from outside (the app, an operator, a restored
--   backup) are moved into the private row by the sync trigger in the same statement.
-- * store_refreshed_tokens, record_refresh_failure and disconnect_connection_if_current compare
--   token_version; their previous signatures (token text) stay for the previous release's
--   functions, which run against this schema between `db push` and `functions deploy`.
-- * The events trigger reads only the row and runs only when the state changes; the jitter
--   trigger leaves leased rows out: a refresh fires no trigger that does work.
--
-- Existing usable pairs move out of providers into the private rows below (broken entries stay
-- as they are); nothing is lost, and nothing counts as a new pair (no event, no reset).

-- ---------------------------------------------------------------------------------------------
-- The private row's new columns, filled from providers while the previous triggers (which do
-- not fire on these columns) are still in place.
-- ---------------------------------------------------------------------------------------------

alter table cafe24_private.connections add column if not exists access_token text;
alter table cafe24_private.connections add column if not exists refresh_token text;
alter table cafe24_private.connections
  add column if not exists token_version bigint not null default 0;
alter table cafe24_private.connections add column if not exists connected_at text;

update cafe24_private.connections c
set access_token = case
      when jsonb_typeof(s.providers -> 'cafe24' -> 'access_token') = 'string'
        then s.providers -> 'cafe24' ->> 'access_token'
    end,
    refresh_token = s.providers -> 'cafe24' ->> 'refresh_token'
from public.auth_settings s
where s.id = c.auth_settings_id
  and jsonb_typeof(s.providers) = 'object'
  and jsonb_typeof(s.providers -> 'cafe24') = 'object'
  and jsonb_typeof(s.providers -> 'cafe24' -> 'refresh_token') = 'string'
  and s.providers -> 'cafe24' ->> 'refresh_token' <> ''
  and jsonb_typeof(s.providers -> 'cafe24' -> 'mall_id') = 'string'
  and s.providers -> 'cafe24' ->> 'mall_id' <> '';

update cafe24_private.connections c
set connected_at = s.providers -> 'cafe24' ->> 'connected_at'
from public.auth_settings s
where s.id = c.auth_settings_id
  and jsonb_typeof(s.providers) = 'object'
  and jsonb_typeof(s.providers -> 'cafe24') = 'object'
  and c.connected_at is distinct from (s.providers -> 'cafe24' ->> 'connected_at');

comment on table public.auth_settings is
  'Per-user provider settings. providers.cafe24 holds what identifies the Cafe24 connection (mall_id, shop_no, board_no, scope, connected_at); its tokens and their expiries live in cafe24_private.connections.';

-- ---------------------------------------------------------------------------------------------
-- Keeping connections in step with auth_settings
-- ---------------------------------------------------------------------------------------------


-- Classifies a connection for the refresher from its providers document and the refresh token
-- its private row holds. Non-string or empty keys are not repaired or guessed at: the row is
-- skipped and counted, and its tokens are left exactly as they are (a broken entry's
-- refresh_token stays under providers.cafe24, where it is read here).
create or replace function cafe24_private.classify_connection(
  p_providers jsonb,
  p_refresh_token text
)
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
      or coalesce(p_providers -> 'cafe24' ->> 'refresh_token', p_refresh_token, '') = ''
      then 'missing_keys'
    else 'ok'
  end
$$;

-- The keys of a pair under providers.cafe24 that belong in the private row: the trigger takes
-- them out of providers whenever a usable pair arrives there (sync_connection).
create or replace function cafe24_private.cafe24_token_keys()
returns text[]
language sql
immutable
set search_path = ''
as $$
  select array['access_token', 'refresh_token', 'expires_at', 'refresh_token_expires_at']
$$;

-- Whoever writes providers (the OAuth callback, the app, an operator in Studio, a restored
-- backup), the private row follows, and tokens do not stay in providers: each of the pair's keys
-- (cafe24_token_keys) that a write puts under providers.cafe24 or changes there is moved into the
-- private row as it is written. A refresh_token of null removes the pair. An entry with a
-- refresh_token that cannot be used (empty, not a string, or beside an empty or non-string
-- mall_id) is left exactly as it is, tokens included, and counted by its row_state. A key the
-- write leaves as it was stays: the access token and expiry a refresh copies there
-- (CAFE24_PLAINTEXT_TOKEN_COPY: store_refreshed_tokens marks its own write with the
-- transaction-local setting cafe24_private.writing_token_copy), and an app writing back what it
-- read. A new refresh token or mall means a new connection: its failures, backoff,
-- reconnect_required status and lease belong to the old one and are cleared, and token_version
-- counts the new pair. Deleting providers.cafe24 removes the pair with it. A write that changes
-- nothing the private row holds leaves that row alone.
--
-- One function, two triggers: before an update it takes the tokens out of the new row itself;
-- after an insert (the private row's foreign key needs the auth_settings row to exist) it writes
-- the private row, then strips the tokens with an update of the row just inserted, in the same
-- statement.
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
  then
    insert into cafe24_private.connections as c (
      auth_settings_id, user_id, mall_id, row_state,
      access_expires_at, refresh_expires_at, due_at,
      access_token, refresh_token, connected_at
    ) values (
      new.id, new.user_id, v_mall_id, v_row_state,
      v_access_expires_at, v_refresh_expires_at,
      cafe24_private.refresh_due_at(v_access_expires_at, v_refresh_expires_at),
      v_access_token, v_refresh_token, v_entry ->> 'connected_at'
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

drop trigger if exists sync_cafe24_connection on public.auth_settings;
drop trigger if exists sync_cafe24_connection_update on public.auth_settings;
create trigger sync_cafe24_connection
  after insert on public.auth_settings
  for each row execute function cafe24_private.sync_connection();

create trigger sync_cafe24_connection_update
  before update of providers, user_id on public.auth_settings
  for each row execute function cafe24_private.sync_connection();


drop function if exists cafe24_private.classify_providers(jsonb);

-- ---------------------------------------------------------------------------------------------
-- Claiming and settling: the pair and its token_version come from the private row
-- ---------------------------------------------------------------------------------------------

do $$
begin
  if not exists (
    select 1 from pg_attribute
    where attrelid = 'cafe24_private.settled_step'::regclass
      and attname = 'next_token_version' and not attisdropped
  ) then
    alter type cafe24_private.settled_step add attribute next_token_version bigint;
  end if;
end
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
-- failures, backoff and the lease are cleared. providers.cafe24 is written only when the answer's
-- scopes differ from the ones it holds (the grant changed), or with p_plaintext_copy
-- (CAFE24_PLAINTEXT_TOKEN_COPY), which also copies the access token and its expiry there, in the
-- same transaction, for apps that read them there; never the refresh token. With p_claim_next,
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
              then jsonb_build_object('access_token', p_tokens -> 'access_token',
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

-- Claims one named connection for the run, if the run's rules say it is due: the verdict comes
-- from verdict_expression(), the same rules the census and claim_due_pairs are built from,
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
  execute format(
    'select %s from cafe24_private.connections c where c.auth_settings_id = $2',
    cafe24_private.verdict_expression()
  )
  into v_verdict
  using v_scope, p_auth_settings_id;

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

-- The previous release's claim_connection (no token_version; its settle compares the refresh
-- token's text): kept while functions of that release may still run.
create or replace function cafe24_private.claim_connection(
  p_run_id uuid,
  p_auth_settings_id uuid
)
returns table (
  verdict text,
  auth_settings_id uuid,
  mall_id text,
  refresh_token text,
  consecutive_failures integer,
  answer_possibly_lost boolean
)
language sql
set search_path = ''
as $$
  select p.verdict, p.auth_settings_id, p.mall_id, p.refresh_token, p.consecutive_failures,
    p.answer_possibly_lost
  from cafe24_private.claim_connection_pair(p_run_id, p_auth_settings_id) p
$$;

-- The connections a token request names: the row with that auth_settings id, or the rows holding
-- that mall. Of several rows for one mall, the refreshable ones (row_state 'ok', status 'active')
-- come first; two are enough to tell "this one" from "ambiguous". db_now is the database's clock,
-- which every due, lease and backoff comparison uses, so the caller compares the expiry with the
-- same clock. Only one of the two arguments is ever given; each half reads its own index.
create or replace function cafe24_private.token_connections(
  p_auth_settings_id uuid,
  p_mall_id text
)
returns table (
  auth_settings_id uuid,
  mall_id text,
  row_state text,
  status text,
  access_token text,
  access_expires_at timestamptz,
  shop_no jsonb,
  scopes jsonb,
  lease_expires_at timestamptz,
  next_attempt_at timestamptz,
  last_error_code text,
  db_now timestamptz
)
language sql
stable
set search_path = ''
as $$
  with named as (
    select c.auth_settings_id from cafe24_private.connections c
    where c.auth_settings_id = p_auth_settings_id
    union
    select c.auth_settings_id from cafe24_private.connections c
    where c.mall_id = p_mall_id
  )
  select
    c.auth_settings_id,
    c.mall_id,
    c.row_state,
    c.status,
    c.access_token,
    c.access_expires_at,
    s.providers -> 'cafe24' -> 'shop_no',
    s.providers -> 'cafe24' -> 'scopes',
    c.lease_expires_at,
    c.next_attempt_at,
    c.last_error_code,
    now()
  from named n
  join cafe24_private.connections c on c.auth_settings_id = n.auth_settings_id
  join public.auth_settings s on s.id = c.auth_settings_id
  order by (c.row_state = 'ok' and c.status = 'active') desc, c.updated_at desc, c.auth_settings_id
  limit 2
$$;

-- ---------------------------------------------------------------------------------------------
-- Connecting and disconnecting read the pair from the private row
-- ---------------------------------------------------------------------------------------------


-- Stores the pair a code exchange returned for a user. Returns the auth_settings id and the pair
-- it replaced ({mall_id, access_token, refresh_token}, or null), which the caller revokes at Cafe24: a
-- replaced pair would otherwise stay live with nobody holding it.
--
-- The user's row: the one already holding this mall, else one holding any Cafe24 connection, else
-- the oldest; none → a new row. Two callbacks for one user at once (two tabs) would each see "no
-- row" and insert two, so the user id is locked for the transaction first.
--
-- The merge keeps every other provider and the app's own settings under providers.cafe24 (scope,
-- shop_no, board_no, …). When the mall changes, the settings that name things in the old mall
-- (shop_no, board_no, shops) are dropped: shop 2 or board 7 of one mall means nothing in another.
-- Expiry and scopes of the old pair are dropped before merging, so a token answer without them
-- does not leave stale values beside the new tokens. The pair is written under providers.cafe24,
-- and the sync trigger moves it into the private row in the same statement (identity stays in
-- providers); the new refresh token (or mall) makes it reset the connection's refresh state:
-- reconnect_required, failures, backoff, lease. The replaced pair is read from the private row.
create or replace function cafe24_private.store_connection(
  p_user_id uuid,
  p_mall_id text,
  p_tokens jsonb,
  p_connected_at timestamptz default now(),
  out id uuid,
  out replaced jsonb
)
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_providers jsonb;
  v_entry jsonb;
  v_access_token text;
  v_refresh_token text;
begin
  if p_user_id is null or coalesce(p_mall_id, '') = ''
    or not coalesce(cafe24_private.is_complete_token_pair(p_tokens), false)
  then
    raise exception 'store_connection: user, mall, non-empty access_token and refresh_token and an ISO-8601 expires_at are required'
      using errcode = '22023';
  end if;

  perform pg_advisory_xact_lock(hashtextextended('cafe24_private.store_connection:' || p_user_id::text, 0));

  select s.id, s.providers into v_id, v_providers
  from public.auth_settings s
  where s.user_id = p_user_id
  order by
    (s.providers -> 'cafe24' ->> 'mall_id') is not distinct from p_mall_id desc,
    jsonb_typeof(s.providers -> 'cafe24') is not distinct from 'object' desc,
    s.created_at,
    s.id
  limit 1
  for update;

  if v_id is not null and jsonb_typeof(v_providers) is distinct from 'object' then
    raise exception 'store_connection: auth_settings % has providers that are not a JSON object', v_id
      using errcode = '22023';
  end if;

  v_entry := case
    when jsonb_typeof(v_providers -> 'cafe24') = 'object' then v_providers -> 'cafe24'
    else '{}'::jsonb
  end;
  select c.access_token, c.refresh_token into v_access_token, v_refresh_token
  from cafe24_private.connections c
  where c.auth_settings_id = v_id;
  if coalesce(v_refresh_token, '') not in ('', p_tokens ->> 'refresh_token') then
    replaced := jsonb_strip_nulls(jsonb_build_object(
      'mall_id', v_entry -> 'mall_id',
      'access_token', v_access_token,
      'refresh_token', v_refresh_token
    ));
  end if;
  if (v_entry ->> 'mall_id') is distinct from p_mall_id then
    v_entry := v_entry - 'shop_no' - 'board_no' - 'shops';
  end if;
  v_entry := (v_entry - 'refresh_token_expires_at' - 'scopes' - 'last_warning')
    || p_tokens
    || jsonb_build_object(
      'mall_id', p_mall_id,
      'connected_at', to_jsonb(p_connected_at)
    );

  if v_id is null then
    insert into public.auth_settings (user_id, providers)
    values (p_user_id, jsonb_build_object('cafe24', v_entry))
    returning auth_settings.id into v_id;
  else
    update public.auth_settings
    set providers = jsonb_set(providers, '{cafe24}', v_entry), updated_at = now()
    where auth_settings.id = v_id;
  end if;
  id := v_id;
end
$$;

-- Removes the tokens of one connection, keeps its settings, and marks it disconnected with the
-- reason (a stable code, e.g. CONNECTION_TAKEN_OVER or DISCONNECTED_BY_USER). Returns the pair
-- that was removed ({access_token, refresh_token}) so the caller can revoke it at Cafe24, or null
-- when the row held no tokens. A refresh in flight for this connection then fails its
-- compare-and-swap and stores nothing.
create or replace function cafe24_private.disconnect_connection(
  p_auth_settings_id uuid,
  p_reason text
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_entry jsonb;
  v_removed jsonb;
  v_access_token text;
  v_refresh_token text;
begin
  if p_auth_settings_id is null or coalesce(p_reason, '') !~ '^[A-Z][A-Z0-9_]{2,63}$' then
    raise exception 'disconnect_connection: an auth_settings id and an UPPER_SNAKE reason code are required'
      using errcode = '22023';
  end if;

  select s.providers -> 'cafe24' into v_entry
  from public.auth_settings s
  where s.id = p_auth_settings_id
  for update;
  if jsonb_typeof(v_entry) is distinct from 'object' then
    return null;
  end if;

  select c.access_token, c.refresh_token into v_access_token, v_refresh_token
  from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id;
  if coalesce(v_refresh_token, v_access_token, '') <> '' then
    v_removed := jsonb_strip_nulls(jsonb_build_object(
      'access_token', v_access_token,
      'refresh_token', v_refresh_token
    ));
  end if;

  -- A refresh_token of null tells the sync trigger to remove the pair from the private row (a
  -- new token_version, so a refresh in flight fails its compare-and-swap); it takes the key out
  -- of providers again.
  update public.auth_settings
  set providers = jsonb_set(
        providers,
        '{cafe24}',
        (v_entry - cafe24_private.cafe24_credential_keys())
          || jsonb_build_object('refresh_token', null)
      ),
      updated_at = now()
  where id = p_auth_settings_id;

  -- After the sync trigger has seen the tokens go (which resets the refresh state).
  update cafe24_private.connections
  set status = 'disconnected',
      last_error_code = p_reason,
      last_error_message = null,
      last_error_at = now(),
      updated_at = now()
  where auth_settings_id = p_auth_settings_id;

  return v_removed;
end
$$;

-- Gives a pair that nobody may complete (a refused completion, an expired pending connection) to
-- the mall's current holder instead of revoking it. Cafe24 may end a mall's older pairs on every
-- new grant, and a revoke ends that pair's refresh token as well, so revoking would leave the
-- holder with nothing live: a stranger who started an attempt and got the operator to approve it
-- would cost the holder its connection. The pair goes only to the connection that already holds
-- this mall (its owner consented to this app for this mall), never to the attempt's user, and
-- only when the pair was granted every scope the holder's was (a narrower one would take access
-- away). The holder's connected_at and settings stay; its refresh state starts clean.
-- Returns the holder's auth_settings id and its previous pair ({mall_id, access_token,
-- refresh_token}) for the caller to revoke, or nulls when there is no such holder: the caller
-- then revokes the pair. Callers hold the per-mall lock of complete_pending_connection.
create or replace function cafe24_private.give_pair_to_holder(
  p_mall_id text,
  p_tokens jsonb,
  out auth_settings_id uuid,
  out replaced jsonb
)
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_entry jsonb;
  v_access_token text;
  v_refresh_token text;
begin
  if coalesce(p_mall_id, '') = '' or not coalesce(cafe24_private.is_complete_token_pair(p_tokens), false)
  then
    return;
  end if;

  select s.id, s.providers -> 'cafe24', c.access_token, c.refresh_token
  into v_id, v_entry, v_access_token, v_refresh_token
  from cafe24_private.connections c
  join public.auth_settings s on s.id = c.auth_settings_id
  where c.mall_id = p_mall_id
    and c.row_state = 'ok'
    and c.status <> 'disconnected'
    and jsonb_typeof(s.providers -> 'cafe24') = 'object'
    and s.providers -> 'cafe24' ->> 'mall_id' = p_mall_id
    and coalesce(c.refresh_token, '') <> ''
  order by s.updated_at desc, s.id
  limit 1
  for update of s;

  if v_id is null
    or v_refresh_token = p_tokens ->> 'refresh_token'
    or not (
      case when jsonb_typeof(v_entry -> 'scopes') = 'array' then v_entry -> 'scopes' else '[]'::jsonb end
      <@ case when jsonb_typeof(p_tokens -> 'scopes') = 'array' then p_tokens -> 'scopes' else '[]'::jsonb end
    )
  then
    return;
  end if;

  replaced := jsonb_strip_nulls(jsonb_build_object(
    'mall_id', v_entry -> 'mall_id',
    'access_token', v_access_token,
    'refresh_token', v_refresh_token
  ));
  -- The sync trigger moves the pair into the private row.
  update public.auth_settings s
  set providers = jsonb_set(
        s.providers,
        '{cafe24}',
        (v_entry - 'refresh_token_expires_at' - 'scopes') || p_tokens
      ),
      updated_at = now()
  where s.id = v_id;
  auth_settings_id := v_id;
end
$$;

-- CAFE24_PLAINTEXT_TOKEN_COPY after a connect: copies the access token the private row holds, and
-- its expiry, into providers.cafe24 (never the refresh token), as store_refreshed_tokens does
-- after a refresh, for apps that read them there. Marked as the copy, so the sync trigger leaves
-- it where it is.
create or replace function cafe24_private.copy_access_token(p_auth_settings_id uuid)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('cafe24_private.writing_token_copy', 'on', true);
  update public.auth_settings s
  set providers = jsonb_set(s.providers, '{cafe24}', (s.providers -> 'cafe24')
        || jsonb_build_object(
          'access_token', c.access_token,
          'expires_at',
          to_char(c.access_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))),
      updated_at = now()
  from cafe24_private.connections c
  where s.id = p_auth_settings_id
    and c.auth_settings_id = s.id
    and c.access_token is not null
    and jsonb_typeof(s.providers -> 'cafe24') = 'object';
  perform set_config('cafe24_private.writing_token_copy', 'off', true);
end
$$;

-- Drop-in for code that selected auth_settings: the same columns, providers without credentials
-- (without_credentials), with the connection's expiries under providers.cafe24 where the
-- original app kept them (they live in the private row). A browser (authenticated) sees its own
-- rows; service_role, which reads auth_settings whole anyway, sees every row, so server code can
-- use the drop-in too.
create or replace view public.auth_settings_without_tokens
with (security_barrier = true)
as
select
  s.id,
  s.org_id,
  s.user_id,
  case
    when jsonb_typeof(p.shown -> 'cafe24') = 'object' then jsonb_set(p.shown, '{cafe24}',
      (p.shown -> 'cafe24') || jsonb_strip_nulls(jsonb_build_object(
        'expires_at',
        to_char(c.access_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'refresh_token_expires_at',
        to_char(c.refresh_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))))
    else p.shown
  end as providers,
  s.created_at,
  s.updated_at
from public.auth_settings s
left join cafe24_private.connections c on c.auth_settings_id = s.id
cross join lateral (select cafe24_private.without_credentials(s.providers) as shown) p
where s.user_id = (select auth.uid()) or current_user = 'service_role';

-- Starts a verification of p_mall_id if none started within mall_verification_interval(), and
-- returns the connections to verify with their access tokens; nothing when the mall has no
-- connection holding credentials (nothing is recorded for it either, so made-up mall ids leave
-- no rows) or when the last verification is too recent. Atomic: of two notices racing, one
-- gets the rows. A connection whose access token has expired comes back with a null token and
-- the mall's verification is left pending until its next refresh (pending_since): it is never
-- refreshed for a notice. Each row carries the token_version to disconnect with
-- (disconnect_connection_if_current). Named for the token_version its rows carry; the name
-- claim_mall_verification is the previous release's (below).
create or replace function cafe24_private.claim_mall_verification_pairs(p_mall_id text)
returns table (auth_settings_id uuid, access_token text, token_version bigint)
language plpgsql
set search_path = ''
as $$
begin
  if not exists (
    select 1 from cafe24_private.connections c
    where c.mall_id = p_mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
  ) then
    return;
  end if;

  insert into cafe24_private.mall_verifications as v (mall_id, last_started_at)
  values (p_mall_id, now())
  on conflict (mall_id) do update set last_started_at = excluded.last_started_at
  where v.last_started_at <= now() - cafe24_private.mall_verification_interval();
  if not found then
    return;
  end if;

  if exists (
    select 1 from cafe24_private.connections c
    where c.mall_id = p_mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
      and c.access_expires_at <= now()
  ) then
    update cafe24_private.mall_verifications v
    set pending_since = coalesce(v.pending_since, now())
    where v.mall_id = p_mall_id;
  end if;

  return query
  select c.auth_settings_id,
    case when c.access_expires_at <= now() then null else c.access_token end,
    c.token_version
  from cafe24_private.connections c
  where c.mall_id = p_mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
    and c.access_token is not null
  order by c.auth_settings_id;
end
$$;

-- The pending verifications whose mall was refreshed since the notice (all malls, or only
-- p_mall_id), with the connections to verify and their new access tokens. Each is handed out
-- once: claiming clears pending_since and counts as a start. Pending rows of malls that no longer
-- have a connection holding credentials are cleared without a verification. Each row carries the
-- token_version to disconnect with.
create or replace function cafe24_private.claim_verification_pairs_after_refresh(
  p_mall_id text default null
)
returns table (mall_id text, auth_settings_id uuid, access_token text, token_version bigint)
language plpgsql
set search_path = ''
as $$
begin
  update cafe24_private.mall_verifications v
  set pending_since = null
  where v.pending_since is not null
    and (p_mall_id is null or v.mall_id = p_mall_id)
    and not exists (
      select 1 from cafe24_private.connections c
      where c.mall_id = v.mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
    );

  return query
  with claimed as (
    update cafe24_private.mall_verifications v
    set pending_since = null, last_started_at = now()
    where v.pending_since is not null
      and (p_mall_id is null or v.mall_id = p_mall_id)
      and exists (
        select 1 from cafe24_private.connections c
        where c.mall_id = v.mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
          and c.last_refreshed_at >= v.pending_since
      )
    returning v.mall_id
  )
  select c.mall_id, c.auth_settings_id, c.access_token, c.token_version
  from claimed
  join cafe24_private.connections c on c.mall_id = claimed.mall_id
  where c.row_state = 'ok' and c.status <> 'disconnected'
    and c.access_token is not null
  order by c.mall_id, c.auth_settings_id;
end
$$;

-- The previous release's claim_mall_verification and claim_verifications_after_refresh (no
-- token_version: its disconnect_connection_if_current compares the access token's text): kept
-- while functions of that release may still run.
create or replace function cafe24_private.claim_mall_verification(p_mall_id text)
returns table (auth_settings_id uuid, access_token text)
language sql
set search_path = ''
as $$
  select p.auth_settings_id, p.access_token
  from cafe24_private.claim_mall_verification_pairs(p_mall_id) p
$$;

create or replace function cafe24_private.claim_verifications_after_refresh(
  p_mall_id text default null
)
returns table (mall_id text, auth_settings_id uuid, access_token text)
language sql
set search_path = ''
as $$
  select p.mall_id, p.auth_settings_id, p.access_token
  from cafe24_private.claim_verification_pairs_after_refresh(p_mall_id) p
$$;

-- disconnect_connection, but only while the row still holds the pair that Cafe24's answer was
-- about (the token_version claim_mall_verification_pairs returned): a refresh or a reconnect in the
-- meantime means the answer is stale. Returns 'disconnected' or 'superseded'.
create or replace function cafe24_private.disconnect_connection_if_current(
  p_auth_settings_id uuid,
  p_token_version bigint,
  p_reason text
)
returns text
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from public.auth_settings s
  where s.id = p_auth_settings_id
  for update;
  perform 1 from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
    and c.token_version = p_token_version
  for update;
  if not found then
    return 'superseded';
  end if;
  perform cafe24_private.disconnect_connection(p_auth_settings_id, p_reason);
  return 'disconnected';
end
$$;

-- The previous release's disconnect_connection_if_current, called with the access token that
-- was verified: kept while functions of that release may still run. Compares the text as that
-- release did.
create or replace function cafe24_private.disconnect_connection_if_current(
  p_auth_settings_id uuid,
  p_access_token text,
  p_reason text
)
returns text
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from public.auth_settings s
  where s.id = p_auth_settings_id
  for update;
  perform 1 from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
    and c.access_token = p_access_token
  for update;
  if not found then
    return 'superseded';
  end if;
  perform cafe24_private.disconnect_connection(p_auth_settings_id, p_reason);
  return 'disconnected';
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Triggers that do no work on a refresh
-- ---------------------------------------------------------------------------------------------


-- A pair issued within the last 10 minutes is first due up to first_due_spread earlier than its
-- token's expiry says, drawn at random, never before now. Its issue is the later of
-- providers.cafe24.connected_at (the connect flow's store_connection sets it; the sync trigger
-- keeps it in connections.connected_at) and its access token's expiry less the lifetime Cafe24
-- gives access tokens, so pairs stored the original app's way (no connected_at, no history here: an imported fleet) are spread too. Malls
-- connected or imported in one go then come due over an hour instead of in one minute. Only when
-- tokens arrive from outside a refresh (no run holds the row) and push the due time later; a
-- refresh's own new tokens are never moved, and the update trigger's WHEN leaves leased rows (a
-- refresh storing its pair) out, so the hot path does not call it.
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
  v_connected_at := cafe24_private.parse_instant(to_jsonb(new.connected_at));
  v_issued_at := greatest(v_connected_at,
    new.access_expires_at - cafe24_private.access_token_lifetime());
  if v_issued_at is null or v_issued_at < now() - interval '10 minutes' then
    return new;
  end if;
  new.due_at := greatest(now(), new.due_at - random() * v_spread);
  return new;
end
$$;

drop trigger if exists jitter_first_due_on_update on cafe24_private.connections;
create trigger jitter_first_due_on_update
  before update of due_at on cafe24_private.connections
  for each row when (new.due_at is distinct from old.due_at and old.lease_id is null)
  execute function cafe24_private.jitter_first_due();


-- Compares a connection's state before and after a change and writes the event it amounts to, if
-- any. Reads nothing but the row: connections.connected_at is providers.cafe24.connected_at as
-- the sync trigger last saw it, which only a connect changes (a refresh and a reconnect both
-- bring a new pair; connected_at tells them apart). The update trigger's WHEN runs it only when
-- status, consecutive_failures, row_state, mall_id or connected_at change, so a plain refresh
-- (which changes none of them) never calls it.
create or replace function cafe24_private.record_connection_event()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_type text;
  v_code text;
  v_event_id bigint;
begin
  if tg_op = 'INSERT' then
    if new.row_state = 'ok' then
      v_type := 'connected';
    end if;
  elsif new.status = 'disconnected' and old.status <> 'disconnected' then
    v_type := case
      when new.last_error_code = 'CONNECTION_TAKEN_OVER' then 'taken_over'
      else 'disconnected'
    end;
    v_code := new.last_error_code;
  elsif new.row_state = 'ok' and (
    old.row_state <> 'ok'
    or old.status = 'disconnected'
    or old.mall_id is distinct from new.mall_id
    or old.connected_at is distinct from new.connected_at
  ) then
    v_type := 'connected';
  elsif new.status = 'reconnect_required' and old.status <> 'reconnect_required' then
    v_type := 'reconnect_required';
    v_code := new.last_error_code;
  elsif new.row_state = 'ok' and new.status = 'active' and (
    old.status = 'reconnect_required'
    or (old.consecutive_failures > 0 and new.consecutive_failures = 0)
  ) then
    v_type := 'recovered';
  end if;

  if v_type is not null then
    insert into cafe24_private.connection_events (auth_settings_id, user_id, mall_id, type, code)
    values (
      new.auth_settings_id, new.user_id, new.mall_id, v_type,
      case when v_code ~ '^[A-Z][A-Z0-9_]{2,63}$' then v_code end
    )
    returning id into v_event_id;
    insert into cafe24_private.connection_event_deliveries (event_id, auth_settings_id)
    values (v_event_id, new.auth_settings_id);
  end if;
  return null;
end
$$;

drop trigger if exists record_cafe24_connection_event on cafe24_private.connections;
drop trigger if exists record_cafe24_connection_event_update on cafe24_private.connections;
create trigger record_cafe24_connection_event
  after insert on cafe24_private.connections
  for each row execute function cafe24_private.record_connection_event();

create trigger record_cafe24_connection_event_update
  after update on cafe24_private.connections
  for each row when (
    old.status is distinct from new.status
    or old.consecutive_failures is distinct from new.consecutive_failures
    or old.row_state is distinct from new.row_state
    or old.mall_id is distinct from new.mall_id
    or old.connected_at is distinct from new.connected_at
  )
  execute function cafe24_private.record_connection_event();

-- connections.connected_at took over what this table remembered.
drop table if exists cafe24_private.connection_event_marks;

-- ---------------------------------------------------------------------------------------------
-- The pairs leave providers. The private rows hold them already (above), so the sync trigger
-- finds nothing new: no reset, no event, no new token_version.
-- ---------------------------------------------------------------------------------------------

update public.auth_settings s
set providers = jsonb_set(s.providers, '{cafe24}', (s.providers -> 'cafe24') - (
  select coalesce(array_agg(k), '{}')
  from unnest(cafe24_private.cafe24_token_keys()) k
  where jsonb_typeof(s.providers -> 'cafe24' -> k) in ('string', 'null')
))
where jsonb_typeof(s.providers) = 'object'
  and jsonb_typeof(s.providers -> 'cafe24') = 'object'
  and jsonb_typeof(s.providers -> 'cafe24' -> 'refresh_token') = 'string'
  and s.providers -> 'cafe24' ->> 'refresh_token' <> ''
  and jsonb_typeof(s.providers -> 'cafe24' -> 'mall_id') = 'string'
  and s.providers -> 'cafe24' ->> 'mall_id' <> '';

-- Applying the migrations again (each one can be) runs the earlier ones' sync over every row
-- first, which looks for the pair in providers, where it no longer is, and calls the row
-- missing_keys. What the private row and providers say is restored here (expiries that sync
-- cleared stay unknown: such a connection is refreshed once, at once).
update cafe24_private.connections c
set row_state = cafe24_private.classify_connection(s.providers, c.refresh_token),
    updated_at = now()
from public.auth_settings s
where s.id = c.auth_settings_id
  and c.row_state is distinct from cafe24_private.classify_connection(s.providers, c.refresh_token);

-- ---------------------------------------------------------------------------------------------
-- Privileges: only the functions' owner calls them.
-- ---------------------------------------------------------------------------------------------

revoke all on function cafe24_private.classify_connection(jsonb, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.cafe24_token_keys() from public, anon, authenticated;
revoke all on function cafe24_private.sync_connection() from public, anon, authenticated;
revoke all on function cafe24_private.claim_due_pairs(uuid, integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_due_connections(uuid, integer)
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
revoke all on function cafe24_private.claim_connection_pair(uuid, uuid)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_connection(uuid, uuid)
  from public, anon, authenticated;
revoke all on function cafe24_private.token_connections(uuid, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.copy_access_token(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.claim_mall_verification_pairs(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_mall_verification(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_verification_pairs_after_refresh(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_verifications_after_refresh(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.disconnect_connection_if_current(uuid, bigint, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.disconnect_connection_if_current(uuid, text, text)
  from public, anon, authenticated;

-- An Admin API call's rejected token is compared with the private row, where the pair now lives.
-- An Admin API call was answered 401 with p_rejected, the access token it sent. Compared here,
-- in one locked statement, so that of many callers meeting the same 401 at once only the first
-- makes the connection due for a refresh; the refresh itself is getCafe24AccessToken's (single
-- flight and lease). Returns:
--   changed   the connection holds another token now (refreshed meanwhile): retry with it;
--   marked    the token is marked expired (access_expires_at, due_at = now): the next token
--             request refreshes it;
--   too_young the pair was stored less than 5 minutes ago: a refresh would not help;
--   throttled a rejected token of this mall started a refresh within the last 10 minutes;
--   not_found no such connection.
create or replace function cafe24_private.reject_access_token(
  p_auth_settings_id uuid,
  p_rejected text
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_connection cafe24_private.connections;
begin
  select * into v_connection from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
  for update;
  if not found then
    return 'not_found';
  end if;
  if v_connection.access_token is distinct from p_rejected then
    return 'changed';
  end if;
  if v_connection.last_refreshed_at > now() - interval '5 minutes' then
    return 'too_young';
  end if;
  if exists (
    select 1 from cafe24_private.connections c
    where c.mall_id = v_connection.mall_id
      and c.token_rejected_at > now() - interval '10 minutes'
  ) then
    return 'throttled';
  end if;
  update cafe24_private.connections c
  set token_rejected_at = now(),
      access_expires_at = least(c.access_expires_at, now()),
      due_at = least(c.due_at, now()),
      updated_at = now()
  where c.auth_settings_id = p_auth_settings_id;
  return 'marked';
end
$$;
