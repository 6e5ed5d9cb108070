-- Connections: the refresh state and the tokens of every public.auth_settings row, kept in step
-- with its providers.cafe24 by a trigger.
--
-- Why the care: Cafe24 rotates the refresh token on every refresh and the old one dies at once.
-- Two workers refreshing one mall, or a new pair that is not written, disconnects the mall until
-- its owner logs in again. So: a lease per connection (the claim, 30_refresh_rules_and_claim.sql),
-- a compare-and-swap on the pair that was used (token_version) and failures that never touch the
-- tokens
-- (the settle, 40_runs_and_settle.sql), and one row per run (refresh_runs, also there).

-- One row per auth_settings row, kept in step by a trigger. It is the one home of the
-- connection's tokens and their expiries; providers.cafe24 keeps what identifies the connection
-- (mall_id, shop_no, scope, connected_at, …) and is written only when the connection itself
-- changes. A refresh writes this one narrow row and nothing else. A claim (and every other write
-- but a new pair's) rewrites the row without touching an indexed column; the free space
-- fillfactor leaves on each page lets those updates stay on the page (HOT) instead of adding
-- index entries each time. A store moves due_at, so the due index gets the row's new place.
create table cafe24_private.connections (
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
  -- The lease: the run refreshing this connection (its refresh_runs.id) and until when.
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
  updated_at timestamptz not null default now(),
  -- When the app last asked for this connection's access token (note_token_request). The
  -- keep_alive refresh policy keeps such connections' access tokens fresh for a while after.
  token_requested_at timestamptz,
  -- When an Admin API call's 401 last made this connection due (reject_access_token,
  -- 90_admin_api.sql): at most one such refresh per mall per 10 minutes.
  token_rejected_at timestamptz,
  -- The pair. Written by a refresh (store_refreshed_tokens), by a connect, and by the trigger
  -- that moves tokens written into providers.cafe24 from outside (sync_connection). Plaintext for
  -- now; the functions' read and write points are where encryption goes.
  access_token text,
  refresh_token text,
  -- Counts the pairs this row has held: every new or removed refresh token (a refresh, a
  -- connect, a disconnect, a write from outside) adds one, and nothing else does. The settle and
  -- the conditional disconnects compare it (compare-and-swap) instead of the token text, so a
  -- row rewritten with the same pair (a later re-encryption) never looks like a new pair.
  token_version bigint not null default 0,
  -- providers.cafe24.connected_at as the trigger last saw it: only a connect changes it, which
  -- tells a reconnect from a refresh (record_connection_event, 70_events.sql).
  connected_at text,
  -- providers.cafe24.scopes as the sync trigger last saw it, or as a refresh last stored it: a
  -- refresh whose answer grants the same scopes compares with this, in the row it updates anyway,
  -- instead of reading the providers document (store_refreshed_tokens). Null until one of them
  -- writes it.
  scopes jsonb,
  -- A connect's pair arrives sealed for the pending connection it came from (its handle hash)
  -- and completion reseals it for this row at once. Should that fail, the pair would open for
  -- nobody: the handle hash stays here, with the token_version of the pair it was written for
  -- (a newer pair makes it stale), until a reseal writes the pair for the row
  -- (connections_sealed_for_pending, reseal_tokens).
  sealed_for bytea,
  sealed_for_version bigint
) with (fillfactor = 80);

comment on table cafe24_private.connections is
  'Refresh state per public.auth_settings row (maintained by trigger). Only the cafe24_private functions change it.';

-- The claim walks this index from the most overdue connection; only refreshable rows are in it.
create index connections_due_idx on cafe24_private.connections (due_at)
  where row_state = 'ok' and status = 'active';
create index connections_mall_id_idx on cafe24_private.connections (mall_id);
create index connections_user_id_idx on cafe24_private.connections (user_id);
-- Empty but for the moments between a connect and its reseal, and after a reseal that failed.
create index connections_sealed_for_idx on cafe24_private.connections (auth_settings_id)
  where sealed_for is not null;

-- ---------------------------------------------------------------------------------------------
-- Reading providers.cafe24
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

-- How long Cafe24's access tokens live (ACCESS_TOKEN_LIFETIME_MS in
-- supabase/functions/_shared/refresh/scope.ts; a test compares the two). A pair whose issue this
-- project did not see (stored by the original app, an import, an operator) was issued this long
-- before its access token expires: the refresh rules and the first-due jitter date it so.
create or replace function cafe24_private.access_token_lifetime()
returns interval
language sql
immutable
set search_path = ''
as $$
  select interval '2 hours'
$$;

-- ---------------------------------------------------------------------------------------------
-- Keeping connections in step with auth_settings
-- ---------------------------------------------------------------------------------------------

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

create trigger sync_cafe24_connection
  after insert on public.auth_settings
  for each row execute function cafe24_private.sync_connection();

create trigger sync_cafe24_connection_update
  before update of providers, user_id on public.auth_settings
  for each row execute function cafe24_private.sync_connection();

-- ---------------------------------------------------------------------------------------------
-- Token requests from the app
-- ---------------------------------------------------------------------------------------------

-- The app asked for this connection's access token (a function handing tokens to the app calls
-- this with each request). Under the keep_alive refresh policy, a connection asked for recently
-- is kept fresh as under eager; the others are refreshed only to keep their refresh token alive.
-- A busy app asks many times a minute: within a minute of the last note nothing is written, so
-- the row is not rewritten on every request (a minute is nothing against the policy's 24 hours).
create or replace function cafe24_private.note_token_request(p_auth_settings_id uuid)
returns void
language sql
set search_path = ''
as $$
  update cafe24_private.connections
  set token_requested_at = now()
  where auth_settings_id = p_auth_settings_id
    and (token_requested_at is null or token_requested_at < now() - interval '1 minute')
$$;

-- One row per connection, for Studio, psql and the local dashboard. status says what the row is,
-- as public.cafe24_connections does: 'malformed' or 'not_connected' when the row holds no usable
-- credentials (row_state says which), 'disconnected' (last_error_code says by whom), else the
-- refresh status ('active' or 'reconnect_required').
create or replace view cafe24_private.connection_status as
select
  c.auth_settings_id,
  c.mall_id,
  s.user_id,
  s.org_id,
  c.row_state,
  case
    when c.row_state = 'malformed' then 'malformed'
    when c.status = 'disconnected' then 'disconnected'
    when c.row_state <> 'ok' then 'not_connected'
    else c.status
  end as status,
  c.access_expires_at,
  c.refresh_expires_at,
  c.last_refreshed_at,
  c.last_error_code,
  c.last_error_message,
  c.last_error_at,
  c.consecutive_failures,
  c.next_attempt_at,
  c.lease_expires_at > now() as refreshing_now,
  c.answer_possibly_lost_at,
  c.token_requested_at
from cafe24_private.connections c
join public.auth_settings s on s.id = c.auth_settings_id;

-- ---------------------------------------------------------------------------------------------
-- Privileges: service_role reads; only the functions' owner writes and calls.
-- ---------------------------------------------------------------------------------------------

revoke all on table cafe24_private.connections, cafe24_private.connection_status
  from public, anon, authenticated;
grant select on table cafe24_private.connections, cafe24_private.connection_status
  to service_role;

revoke all on function cafe24_private.classify_connection(jsonb, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.cafe24_token_keys() from public, anon, authenticated;
revoke all on function cafe24_private.parse_instant(jsonb) from public, anon, authenticated;
revoke all on function cafe24_private.refresh_due_at(timestamptz, timestamptz)
  from public, anon, authenticated;
revoke all on function cafe24_private.access_token_lifetime() from public, anon, authenticated;
revoke all on function cafe24_private.sync_connection() from public, anon, authenticated;
revoke all on function cafe24_private.note_token_request(uuid) from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- Resealing: bringing stored tokens to the form new values are written in
-- ---------------------------------------------------------------------------------------------

-- The functions seal tokens before writing them (token_seal.ts); SQL never sees a key. A row
-- written before the key ring was set, by a connect, or from outside (sync_connection) holds
-- legacy plaintext, and a row sealed under an earlier key still names that key: the functions
-- reseal both in the background. This lists such rows: a window of at most p_window rows of
-- the primary key from p_from (a random id, wrapping round to the start), so each call costs a
-- bounded index range whatever the table's size, and successive calls cover it all. Leased rows
-- are left to their refresh, which writes the current form itself. p_current_prefix is
-- 'v1.<active kid>.', or '' when no ring is set (plaintext is then current).
create or replace function cafe24_private.tokens_to_reseal(
  p_current_prefix text,
  p_from uuid,
  p_window integer,
  p_limit integer
)
returns table (auth_settings_id uuid, access_token text, refresh_token text, token_version bigint)
language sql
stable
set search_path = ''
as $$
  with candidates as (
    (select c.* from cafe24_private.connections c
     where c.auth_settings_id >= p_from order by c.auth_settings_id limit p_window)
    union all
    (select c.* from cafe24_private.connections c
     where c.auth_settings_id < p_from order by c.auth_settings_id limit p_window)
  )
  select c.auth_settings_id, c.access_token, c.refresh_token, c.token_version
  from candidates c
  where c.refresh_token is not null
    and (c.lease_expires_at is null or c.lease_expires_at <= now())
    and case when p_current_prefix = ''
      then starts_with(c.refresh_token, 'v1.')
        or coalesce(starts_with(c.access_token, 'v1.'), false)
      else not starts_with(c.refresh_token, p_current_prefix)
        or not coalesce(starts_with(c.access_token, p_current_prefix), true)
    end
  limit p_limit
$$;

-- Connections whose pair is still sealed for the pending connection it came from, with that
-- connection's handle hash: a reseal at completion that failed (the database refused it on every
-- retry). The background pass reseals them from there. Marks a newer pair made stale are
-- cleared on the way; leased rows are left to their refresh.
create or replace function cafe24_private.connections_sealed_for_pending(p_limit integer)
returns table (auth_settings_id uuid, handle_hash bytea)
language plpgsql
set search_path = ''
as $$
begin
  update cafe24_private.connections c
  set sealed_for = null, sealed_for_version = null
  where c.sealed_for is not null and c.sealed_for_version is distinct from c.token_version;
  return query
  select c.auth_settings_id, c.sealed_for
  from cafe24_private.connections c
  where c.sealed_for is not null
    and (c.lease_expires_at is null or c.lease_expires_at <= now())
  order by c.auth_settings_id
  limit p_limit;
end
$$;

-- One connection's stored tokens, for resealing it right after a connect.
create or replace function cafe24_private.connection_tokens(p_auth_settings_id uuid)
returns table (auth_settings_id uuid, access_token text, refresh_token text, token_version bigint)
language sql
stable
set search_path = ''
as $$
  select c.auth_settings_id, c.access_token, c.refresh_token, c.token_version
  from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id and c.refresh_token is not null
$$;

-- Writes a row's tokens back in another form (the same pair, resealed). Compare-and-swap on
-- token_version, and never while the row is leased: a refresh in flight keeps its claim on the
-- pair, and a pair that changed meanwhile is not overwritten with the old one. token_version
-- stays as it is, since the pair is the same. True when written.
create or replace function cafe24_private.reseal_tokens(
  p_auth_settings_id uuid,
  p_token_version bigint,
  p_access_token text,
  p_refresh_token text
)
returns boolean
language sql
volatile
set search_path = ''
as $$
  with written as (
    update cafe24_private.connections c
    set access_token = p_access_token, refresh_token = p_refresh_token,
      sealed_for = null, sealed_for_version = null
    where c.auth_settings_id = p_auth_settings_id
      and c.token_version = p_token_version
      and (c.lease_expires_at is null or c.lease_expires_at <= now())
      and p_refresh_token is not null
    returning 1
  )
  select exists (select 1 from written)
$$;

-- How many rows each key protects: the kid of each stored refresh token ('plaintext' for legacy
-- rows; 'unreadable' for a dotted value that is not sealed, which the functions never open). What
-- the status query and deploy:check show while a rotation or the first sealing runs.
create or replace view cafe24_private.token_keys_in_use as
select case when starts_with(c.refresh_token, 'v1.') then split_part(c.refresh_token, '.', 2)
    when strpos(c.refresh_token, '.') > 0 then 'unreadable'
    else 'plaintext' end as kid,
  count(*) as connections
from cafe24_private.connections c
where c.refresh_token is not null
group by 1;

revoke all on table cafe24_private.token_keys_in_use from public, anon, authenticated;
grant select on table cafe24_private.token_keys_in_use to service_role;
revoke all on function cafe24_private.tokens_to_reseal(text, uuid, integer, integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.connections_sealed_for_pending(integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.connection_tokens(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.reseal_tokens(uuid, bigint, text, text)
  from public, anon, authenticated;
