-- Connecting a mall, and custody: a connection belongs to the person who started it, and tokens
-- never reach a browser.
--
-- The OAuth state nonces: cafe24-authorize issues them, cafe24-callback consumes them. A
-- signature proves that we issued a state, not that it has not been used. Cafe24's code dies
-- after a minute, but a state lives ten; recording the nonce and deleting it on use makes every
-- state good for exactly one callback.
--
-- Why two steps to connect: Cafe24's redirect to cafe24-callback proves only that the mall's
-- operator approved *some* authorization request. If the callback attached the tokens to the
-- account that started the request, anyone could start a request for someone else's mall, send
-- the operator the Cafe24 link, and receive the mall's tokens once the operator approves. So the
-- callback exchanges the code at once (codes die after a minute) and parks the pair in
-- pending_connections, under a hash of a random handle; only the session of the user who started
-- the flow can complete it (cafe24-callback POST). That completion proves that the person signed
-- in to the app also controls the mall at Cafe24, so it takes the mall over from any other
-- account that held it.

-- ---------------------------------------------------------------------------------------------
-- OAuth states
-- ---------------------------------------------------------------------------------------------

create table cafe24_private.oauth_states (
  nonce text primary key,
  user_id uuid not null,
  mall_id text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);

comment on table cafe24_private.oauth_states is
  'OAuth state nonces issued by cafe24-authorize; cafe24-callback deletes each one when it uses it.';

create index oauth_states_expires_at_idx on cafe24_private.oauth_states (expires_at);
create index oauth_states_user_id_idx on cafe24_private.oauth_states (user_id, created_at desc);

-- How many unused states one user may hold at once. Generous for tabs opened in parallel; stops
-- one account from filling the table between two cleanups.
create or replace function cafe24_private.max_open_oauth_states()
returns integer
language sql
immutable
set search_path = ''
as $$ select 20 $$;

-- Records a nonce that cafe24-authorize just put into a signed state. The user's oldest open
-- states beyond max_open_oauth_states() are dropped (their callbacks then fail as replayed). A
-- per-user lock makes the insert and the trim one step per user: two authorize calls of one user
-- at once would otherwise lock rows in different orders and deadlock.
create or replace function cafe24_private.record_oauth_state(
  p_nonce text,
  p_user_id uuid,
  p_mall_id text,
  p_expires_at timestamptz
)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if coalesce(length(p_nonce), 0) < 22 or p_user_id is null or coalesce(p_mall_id, '') = ''
    or p_expires_at is null
  then
    raise exception 'record_oauth_state: nonce (>= 22 chars), user, mall and expiry are required'
      using errcode = '22023';
  end if;

  perform pg_advisory_xact_lock(
    hashtextextended('cafe24_private.oauth_states:' || p_user_id::text, 0));

  insert into cafe24_private.oauth_states (nonce, user_id, mall_id, expires_at)
  values (p_nonce, p_user_id, p_mall_id, p_expires_at);

  delete from cafe24_private.oauth_states
  where nonce in (
    select o.nonce from cafe24_private.oauth_states o
    where o.user_id = p_user_id
    order by o.created_at desc, o.nonce
    offset cafe24_private.max_open_oauth_states()
  );
end
$$;

-- Uses a nonce up, exactly once: the DELETE takes the row, so of two callbacks racing with one
-- state only one gets it back (the other waits on the row lock, then finds it gone). Returns
--   'consumed'  the nonce was open, issued to this user for this mall, and is now used up;
--   'unknown'   no such open nonce: used already, never issued, or cleaned up;
--   'mismatch'  issued to another user or for another mall (the state was forged): burned;
--   'expired'   issued, but past its expiry: burned.
create or replace function cafe24_private.consume_oauth_state(
  p_nonce text,
  p_user_id uuid,
  p_mall_id text
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_row cafe24_private.oauth_states%rowtype;
begin
  delete from cafe24_private.oauth_states
  where nonce = p_nonce
  returning * into v_row;

  if not found then
    return 'unknown';
  end if;
  if v_row.user_id is distinct from p_user_id or v_row.mall_id is distinct from p_mall_id then
    return 'mismatch';
  end if;
  if v_row.expires_at <= now() then
    return 'expired';
  end if;
  return 'consumed';
end
$$;

-- Deletes states nobody used (pg_cron job cafe24-oauth-states-cleanup, hourly); returns how
-- many went.
create or replace function cafe24_private.delete_expired_oauth_states()
returns integer
language sql
security definer
set search_path = ''
as $$
  with gone as (
    delete from cafe24_private.oauth_states where expires_at < now() returning 1
  )
  select count(*)::integer from gone
$$;

-- ---------------------------------------------------------------------------------------------
-- Storing a connection
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

-- Stores the compact shop list ([{shop_no, name, default}]) of a just-connected mall and, when
-- the app has not chosen a shop yet, picks the default one (the one flagged default, else the
-- only one). Clears an earlier lookup warning. Touches nothing else, tokens least of all, and
-- only while the row still holds that mall (the user may have connected another one meanwhile).
-- Returns 'stored' or 'superseded'.
create or replace function cafe24_private.store_shops(
  p_auth_settings_id uuid,
  p_mall_id text,
  p_shops jsonb
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_default jsonb;
  v_stored boolean;
begin
  if jsonb_typeof(p_shops) is distinct from 'array' or exists (
    select 1 from jsonb_array_elements(p_shops) e
    where jsonb_typeof(e) <> 'object' or jsonb_typeof(e -> 'shop_no') <> 'number'
  ) then
    raise exception 'store_shops: shops must be an array of objects with a numeric shop_no'
      using errcode = '22023';
  end if;

  select e -> 'shop_no' into v_default
  from jsonb_array_elements(p_shops) e
  where e -> 'default' = 'true'::jsonb
  order by (e ->> 'shop_no')::numeric
  limit 1;
  if v_default is null and jsonb_array_length(p_shops) = 1 then
    v_default := p_shops -> 0 -> 'shop_no';
  end if;

  update public.auth_settings s
  set providers = jsonb_set(
        s.providers,
        '{cafe24}',
        ((s.providers -> 'cafe24') - 'last_warning')
          || jsonb_build_object('shops', p_shops)
          || case
            when coalesce(s.providers -> 'cafe24' -> 'shop_no', 'null'::jsonb) in ('null'::jsonb, '""'::jsonb)
              and v_default is not null
              then jsonb_build_object('shop_no', v_default)
            else '{}'::jsonb
          end
      ),
      updated_at = now()
  where s.id = p_auth_settings_id
    and jsonb_typeof(s.providers -> 'cafe24') = 'object'
    and s.providers -> 'cafe24' ->> 'mall_id' = p_mall_id
  returning true into v_stored;

  return case when v_stored then 'stored' else 'superseded' end;
end
$$;

-- Records why something after the token exchange failed (the shop lookup) as
-- providers.cafe24.last_warning = {code, message, at}: the connection itself stands. The app's
-- settings page shows it from public.cafe24_connections (last_warning); cafe24_private is not
-- reachable from the app.
create or replace function cafe24_private.record_connect_warning(
  p_auth_settings_id uuid,
  p_mall_id text,
  p_code text,
  p_message text
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_stored boolean;
begin
  update public.auth_settings s
  set providers = jsonb_set(
        s.providers,
        '{cafe24,last_warning}',
        jsonb_build_object('code', p_code, 'message', left(p_message, 300), 'at', now())
      ),
      updated_at = now()
  where s.id = p_auth_settings_id
    and jsonb_typeof(s.providers -> 'cafe24') = 'object'
    and s.providers -> 'cafe24' ->> 'mall_id' = p_mall_id
  returning true into v_stored;
  return case when v_stored then 'stored' else 'superseded' end;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Pending connections
-- ---------------------------------------------------------------------------------------------

-- A pending connection that expires without completion is removed only once its pair is revoked:
-- a sweep leases each expired row for a while (lease_expired_pending_connections) and the
-- function settles it (settle_expired_pending_connection): revoked, or after
-- max_pending_revoke_attempts() given up on and logged → deleted; otherwise it comes back at a
-- later sweep. So a revoke refused by Cafe24 (429 under a flood) never leaves a live pair that
-- nobody holds.
create table cafe24_private.pending_connections (
  -- SHA-256 of the handle given to the browser; the handle itself is never stored.
  handle_hash bytea primary key check (length(handle_hash) = 32),
  user_id uuid not null,
  mall_id text not null,
  -- The scopes the user asked for, as signed into the OAuth state.
  requested_scopes text[] not null default '{}',
  -- The pair as it will be stored under providers.cafe24 (see store_connection).
  tokens jsonb not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  -- Revocations tried after expiry, and when the next sweep may try again.
  revoke_attempts integer not null default 0,
  next_revoke_at timestamptz
);

comment on table cafe24_private.pending_connections is
  'Token pairs from a finished Cafe24 authorization, waiting for the initiating user''s session to complete them (cafe24-callback POST). Single use; expire after 10 minutes.';

create index pending_connections_expires_at_idx
  on cafe24_private.pending_connections (expires_at);
create index pending_connections_user_id_idx
  on cafe24_private.pending_connections (user_id);

-- How long a pending connection waits for its completion.
create or replace function cafe24_private.pending_connection_ttl()
returns interval
language sql
immutable
set search_path = ''
as $$ select interval '10 minutes' $$;

-- Pending connections per user. Each one is a live pair at Cafe24 for up to 10 minutes; without a
-- bound, one account could park as many as Cafe24 would issue. Over the bound the callback
-- revokes the new pair at once and ends with TOO_MANY_PENDING_CONNECTIONS.
create or replace function cafe24_private.max_pending_connections()
returns integer
language sql
immutable
set search_path = ''
as $$ select 5 $$;

-- Parks the pair a finished authorization returned, for the user who started it, until
-- pending_connection_ttl() from now. Raises TOO_MANY_PENDING_CONNECTIONS (as the hint) when the
-- user already holds max_pending_connections() unexpired ones.
create or replace function cafe24_private.record_pending_connection(
  p_handle_hash bytea,
  p_user_id uuid,
  p_mall_id text,
  p_requested_scopes text[],
  p_tokens jsonb
)
returns void
language plpgsql
set search_path = ''
as $$
begin
  if length(p_handle_hash) is distinct from 32 or p_user_id is null
    or coalesce(p_mall_id, '') = ''
    or not coalesce(cafe24_private.is_complete_token_pair(p_tokens), false)
  then
    raise exception 'record_pending_connection: a 32-byte handle hash, user, mall and a complete token pair are required'
      using errcode = '22023';
  end if;

  perform pg_advisory_xact_lock(
    hashtextextended('cafe24_private.pending_connections:' || p_user_id::text, 0));
  if (
    select count(*) from cafe24_private.pending_connections p
    where p.user_id = p_user_id and p.expires_at > now()
  ) >= cafe24_private.max_pending_connections() then
    raise exception 'record_pending_connection: the user already has % pending connections',
      cafe24_private.max_pending_connections()
      using errcode = 'P0001', hint = 'TOO_MANY_PENDING_CONNECTIONS';
  end if;

  insert into cafe24_private.pending_connections
    (handle_hash, user_id, mall_id, requested_scopes, tokens, expires_at)
  values (
    p_handle_hash, p_user_id, p_mall_id, coalesce(p_requested_scopes, '{}'), p_tokens,
    now() + cafe24_private.pending_connection_ttl()
  );
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Disconnecting: the one way tokens leave a row on purpose
-- ---------------------------------------------------------------------------------------------

-- The keys under providers.cafe24 that are credentials (removed on disconnect) rather than
-- settings (kept, so a reconnect finds shop_no, board_no, scope as the app left them).
create or replace function cafe24_private.cafe24_credential_keys()
returns text[]
language sql
immutable
set search_path = ''
as $$
  select array['access_token', 'refresh_token', 'expires_at', 'refresh_token_expires_at',
    'scopes', 'connected_at']
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

-- ---------------------------------------------------------------------------------------------
-- Completing a connection, and expired ones
-- ---------------------------------------------------------------------------------------------

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

-- Remembers, on the connection a pending connection's pair has just landed in, that the pair is
-- sealed for that pending connection (its handle hash), in the same transaction: if the reseal
-- that follows fails, the background pass can still open the pair and reseal it
-- (connections_sealed_for_pending).
create or replace function cafe24_private.note_sealed_for(
  p_auth_settings_id uuid,
  p_handle_hash bytea
)
returns void
language sql
set search_path = ''
as $$
  update cafe24_private.connections c
  set sealed_for = p_handle_hash, sealed_for_version = c.token_version
  where c.auth_settings_id = p_auth_settings_id
$$;

-- Uses a pending connection up (exactly once) for the user presenting its handle.
--   invalid   no such handle: never issued, used already, or cleaned up;
--   expired   issued, but older than pending_connection_ttl(): destroyed;
--   mismatch  another user's handle: destroyed, nothing stored for either user;
--             for both, the pair goes to the mall's holder when give_pair_to_holder takes it
--             (auth_settings_id is the holder's, replaced its previous pair, tokens null), else
--             it comes back in tokens for the caller to revoke;
--   connected stored for the user (store_connection), and every other account's hold on the
--             same mall removed (disconnect_connection with CONNECTION_TAKEN_OVER); the pairs
--             removed from them come back in taken_over, and the user's own earlier pair that
--             the new one replaced in replaced, for revocation.
-- Completions for one mall are serialized by a per-mall lock, so two racing completions leave
-- exactly one holder: the later one takes the mall over from the earlier.
create or replace function cafe24_private.complete_pending_connection(
  p_handle_hash bytea,
  p_user_id uuid,
  p_connected_at timestamptz default now()
)
returns table (
  outcome text,
  auth_settings_id uuid,
  mall_id text,
  requested_scopes text[],
  tokens jsonb,
  taken_over jsonb,
  replaced jsonb
)
language plpgsql
set search_path = ''
as $$
declare
  v_pending cafe24_private.pending_connections%rowtype;
  v_id uuid;
  v_replaced jsonb;
  v_other uuid;
  v_removed jsonb;
  v_taken jsonb := '[]'::jsonb;
begin
  delete from cafe24_private.pending_connections p
  where p.handle_hash = p_handle_hash
  returning * into v_pending;

  if not found then
    return query select 'invalid'::text, null::uuid, null::text, null::text[], null::jsonb,
      null::jsonb, null::jsonb;
    return;
  end if;
  perform pg_advisory_xact_lock(
    hashtextextended('cafe24_private.mall:' || v_pending.mall_id, 0));

  if v_pending.expires_at <= now() or v_pending.user_id is distinct from p_user_id then
    select kept.auth_settings_id, kept.replaced into v_id, v_replaced
    from cafe24_private.give_pair_to_holder(v_pending.mall_id, v_pending.tokens) kept;
    if v_id is not null then
      perform cafe24_private.note_sealed_for(v_id, p_handle_hash);
    end if;
    return query select
      case when v_pending.expires_at <= now() then 'expired' else 'mismatch' end::text,
      v_id, v_pending.mall_id, v_pending.requested_scopes,
      case when v_id is null then v_pending.tokens end, null::jsonb, v_replaced;
    return;
  end if;

  select stored.id, stored.replaced into v_id, v_replaced
  from cafe24_private.store_connection(
    v_pending.user_id, v_pending.mall_id, v_pending.tokens, p_connected_at) stored;
  perform cafe24_private.note_sealed_for(v_id, p_handle_hash);

  for v_other in
    select c.auth_settings_id
    from cafe24_private.connections c
    where c.mall_id = v_pending.mall_id
      and c.auth_settings_id <> v_id
      and c.row_state = 'ok'
    order by c.auth_settings_id
  loop
    v_removed := cafe24_private.disconnect_connection(v_other, 'CONNECTION_TAKEN_OVER');
    if v_removed is not null then
      v_taken := v_taken || jsonb_build_array(v_removed || jsonb_build_object(
        'auth_settings_id', v_other));
    end if;
  end loop;

  return query select 'connected'::text, v_id, v_pending.mall_id, v_pending.requested_scopes,
    v_pending.tokens, v_taken, v_replaced;
end
$$;

-- How many times an expired pending connection's pair is offered for revocation before it is
-- given up on.
create or replace function cafe24_private.max_pending_revoke_attempts()
returns integer
language sql
immutable
set search_path = ''
as $$ select 6 $$;

-- Leases up to p_limit expired pending connections for revocation: each is held for 2, 4, 8, …
-- minutes by attempt, so a sweep that dies leaves it for a later one. SQL never calls Cafe24
-- itself: that would carry the client secret through pg_net's queue.
create or replace function cafe24_private.lease_expired_pending_connections(p_limit integer)
returns table (handle_hash bytea, mall_id text, tokens jsonb, revoke_attempts integer)
language sql
set search_path = ''
as $$
  update cafe24_private.pending_connections p
  set revoke_attempts = p.revoke_attempts + 1,
      next_revoke_at = now() + interval '2 minutes' * power(2, p.revoke_attempts)
  where p.handle_hash in (
    select e.handle_hash from cafe24_private.pending_connections e
    where e.expires_at <= now() and (e.next_revoke_at is null or e.next_revoke_at <= now())
    order by e.expires_at
    limit greatest(p_limit, 0)
    for update skip locked
  )
  returning p.handle_hash, p.mall_id, p.tokens, p.revoke_attempts
$$;

-- Before the sweep revokes a leased expired pending connection: gives its pair to the mall's
-- holder (give_pair_to_holder) and removes it. Returns the holder's id and previous pair (for
-- revocation), or nulls when it stays to be revoked.
create or replace function cafe24_private.give_expired_pending_to_holder(
  p_handle_hash bytea,
  out auth_settings_id uuid,
  out replaced jsonb
)
language plpgsql
set search_path = ''
as $$
declare
  v_pending cafe24_private.pending_connections%rowtype;
begin
  -- The row lock, then the mall's: the order complete_pending_connection takes them in.
  select * into v_pending
  from cafe24_private.pending_connections p
  where p.handle_hash = p_handle_hash and p.expires_at <= now()
  for update;
  if not found then
    return;
  end if;

  perform pg_advisory_xact_lock(
    hashtextextended('cafe24_private.mall:' || v_pending.mall_id, 0));

  select kept.auth_settings_id, kept.replaced into auth_settings_id, replaced
  from cafe24_private.give_pair_to_holder(v_pending.mall_id, v_pending.tokens) kept;
  if auth_settings_id is not null then
    perform cafe24_private.note_sealed_for(auth_settings_id, p_handle_hash);
    delete from cafe24_private.pending_connections p where p.handle_hash = p_handle_hash;
  end if;
end
$$;

-- The outcome of one revocation: revoked, or out of attempts → the row goes; otherwise it stays
-- for the next sweep. Returns whether the row was removed.
create or replace function cafe24_private.settle_expired_pending_connection(
  p_handle_hash bytea,
  p_revoked boolean
)
returns boolean
language sql
set search_path = ''
as $$
  with gone as (
    delete from cafe24_private.pending_connections p
    where p.handle_hash = p_handle_hash
      and p.expires_at <= now()
      and (p_revoked or p.revoke_attempts >= cafe24_private.max_pending_revoke_attempts())
    returning 1
  )
  select exists (select 1 from gone)
$$;

-- ---------------------------------------------------------------------------------------------
-- What the browser may read
-- ---------------------------------------------------------------------------------------------

-- The keys of other providers' settings that public.auth_settings_without_tokens shows, as the
-- operator lists them (provider, key): empty by default, so another provider shows nothing until
-- someone decides that a key is not a credential. Only service_role and the owner write it. A row
-- cannot name Cafe24's tokens, so a slip here never shows them.
create table cafe24_private.view_allowed_keys (
  provider text not null check (provider <> ''),
  key text not null check (key <> ''),
  created_at timestamptz not null default now(),
  primary key (provider, key),
  check (provider <> 'cafe24' or key not in ('access_token', 'refresh_token'))
);

comment on table cafe24_private.view_allowed_keys is
  'Settings keys (provider, key) that public.auth_settings_without_tokens shows besides Cafe24''s documented ones. Empty by default; written by the operator as service_role.';

-- The documented settings under providers.cafe24 that are not secret: what
-- public.cafe24_connections shows as scalars, expiries included (an expiry says when, not what).
create or replace function cafe24_private.cafe24_setting_keys()
returns text[]
language sql
immutable
set search_path = ''
as $$
  select array['mall_id', 'shop_no', 'board_no', 'scope', 'connected_at', 'expires_at',
    'refresh_token_expires_at']
$$;

-- providers with only the settings known not to be credentials: for Cafe24
-- cafe24_setting_keys(), for every provider the keys in view_allowed_keys. An allow-list, because
-- a name cannot tell a credential apart (pwd, passphrase, jwt, bearer, dsn, pat, otp_seed, code).
-- Only scalar values pass: a nested object or array of an allowed key may hold a credential
-- (oauth.refresh_token, tokens[].access_token), and so does a string that is a URL with a user
-- or password in it (https://user:pass@host). Providers that are not objects are dropped (a bare
-- "slack_token": "xoxb-…"). Cafe24's shops, scopes and warning are in public.cafe24_connections.
-- security definer: the view calls this as the querying role (authenticated, service_role), and
-- only the owner reads view_allowed_keys; it only removes keys from the JSON it is given.
create or replace function cafe24_private.without_credentials(p_providers jsonb)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select case
    when jsonb_typeof(p_providers) is distinct from 'object' then '{}'::jsonb
    else coalesce((
      select jsonb_object_agg(
        provider.key,
        coalesce((
          select jsonb_object_agg(field.key, field.value)
          from jsonb_each(provider.value) field
          where jsonb_typeof(field.value) in ('string', 'number', 'boolean', 'null')
            and not (
              jsonb_typeof(field.value) = 'string'
              and (field.value #>> '{}') ~* '^[a-z][a-z0-9+.-]*:/*[^/?#[:space:]]*@'
            )
            and (
              (provider.key = 'cafe24' and field.key = any (cafe24_private.cafe24_setting_keys()))
              or exists (
                select 1 from cafe24_private.view_allowed_keys a
                where a.provider = provider.key and a.key = field.key
              )
            )
        ), '{}'::jsonb)
      )
      from jsonb_each(p_providers) provider
      where jsonb_typeof(provider.value) = 'object'
    ), '{}'::jsonb)
  end
$$;

-- The signed-in user's Cafe24 connections, without any token. Owned by the role that applies the
-- schema and not security_invoker on purpose: authenticated has no grant on auth_settings or
-- cafe24_private, and the auth.uid() filter below is what limits each user to their own rows.
create or replace view public.cafe24_connections
with (security_barrier = true)
as
select
  s.id as auth_settings_id,
  c.mall_id,
  s.providers -> 'cafe24' -> 'shop_no' as shop_no,
  s.providers -> 'cafe24' -> 'board_no' as board_no,
  s.providers -> 'cafe24' ->> 'scope' as scope,
  s.providers -> 'cafe24' -> 'scopes' as scopes,
  s.providers -> 'cafe24' -> 'shops' as shops,
  v.status,
  c.access_expires_at as access_token_expires_at,
  c.refresh_expires_at as refresh_token_expires_at,
  c.last_refreshed_at,
  c.last_error_code,
  s.providers -> 'cafe24' -> 'last_warning' as last_warning,
  v.status <> 'active' as needs_reconnect
from public.auth_settings s
join cafe24_private.connections c on c.auth_settings_id = s.id
cross join lateral (
  select case
    when c.row_state = 'malformed' then 'malformed'
    when c.status = 'disconnected' then 'disconnected'
    when c.row_state = 'missing_keys' then 'not_connected'
    else c.status
  end as status
) v
where c.row_state <> 'no_cafe24'
  and s.user_id = (select auth.uid());

comment on view public.cafe24_connections is
  'The signed-in user''s Cafe24 connections: status, expiry, shop and errors. Never a token.';

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

comment on view public.auth_settings_without_tokens is
  'public.auth_settings without credentials: the signed-in user''s rows (every row for service_role); providers keeps only allowed scalar settings (cafe24_private.without_credentials).';

-- ---------------------------------------------------------------------------------------------
-- Privileges: the browser's role reads the two views; service_role reads them and the OAuth
-- states; pending pairs are the functions' owner's alone.
-- ---------------------------------------------------------------------------------------------

revoke all on public.cafe24_connections from public, anon, authenticated;
revoke all on public.auth_settings_without_tokens from public, anon, authenticated;
grant select on public.cafe24_connections to authenticated, service_role;
grant select on public.auth_settings_without_tokens to authenticated, service_role;

revoke all on table cafe24_private.oauth_states from public, anon, authenticated;
grant select on table cafe24_private.oauth_states to service_role;
revoke all on table cafe24_private.pending_connections from public, anon, authenticated;

revoke all on function cafe24_private.max_open_oauth_states() from public, anon, authenticated;
revoke all on function cafe24_private.record_oauth_state(text, uuid, text, timestamptz)
  from public, anon, authenticated;
revoke all on function cafe24_private.consume_oauth_state(text, uuid, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.delete_expired_oauth_states()
  from public, anon, authenticated;
revoke all on function cafe24_private.store_connection(uuid, text, jsonb, timestamptz)
  from public, anon, authenticated;
revoke all on function cafe24_private.store_shops(uuid, text, jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.record_connect_warning(uuid, text, text, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.pending_connection_ttl() from public, anon, authenticated;
revoke all on function cafe24_private.max_pending_connections() from public, anon, authenticated;
revoke all on function cafe24_private.record_pending_connection(bytea, uuid, text, text[], jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.cafe24_credential_keys() from public, anon, authenticated;
revoke all on function cafe24_private.disconnect_connection(uuid, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.note_sealed_for(uuid, bytea)
  from public, anon, authenticated;
revoke all on function cafe24_private.complete_pending_connection(bytea, uuid, timestamptz)
  from public, anon, authenticated;
revoke all on function cafe24_private.give_pair_to_holder(text, jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.give_expired_pending_to_holder(bytea)
  from public, anon, authenticated;
revoke all on function cafe24_private.max_pending_revoke_attempts() from public, anon, authenticated;
revoke all on function cafe24_private.lease_expired_pending_connections(integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.settle_expired_pending_connection(bytea, boolean)
  from public, anon, authenticated;
revoke all on table cafe24_private.view_allowed_keys from public, anon, authenticated;
grant select, insert, update, delete on table cafe24_private.view_allowed_keys to service_role;
revoke all on function cafe24_private.cafe24_setting_keys() from public, anon, authenticated;
-- A view checks EXECUTE on the functions it calls as the querying role, so every role that reads
-- the view needs it. This one only removes keys from the JSON it is given, and authenticated has
-- no USAGE on cafe24_private, so it can call it only through the view.
revoke all on function cafe24_private.without_credentials(jsonb) from public, anon;
grant execute on function cafe24_private.without_credentials(jsonb) to authenticated;
grant execute on function cafe24_private.without_credentials(jsonb) to service_role;

-- CAFE24_PLAINTEXT_TOKEN_COPY after a connect, with the tokens sealed: the function hands over
-- the access token it opened (the private row holds only its sealed form), and its expiry comes
-- from the private row. Never the refresh token.
create or replace function cafe24_private.copy_access_token(
  p_auth_settings_id uuid,
  p_access_token text
)
returns void
language plpgsql
set search_path = ''
as $$
begin
  perform set_config('cafe24_private.writing_token_copy', 'on', true);
  update public.auth_settings s
  set providers = jsonb_set(s.providers, '{cafe24}', (s.providers -> 'cafe24')
        || jsonb_build_object(
          'access_token', p_access_token,
          'expires_at',
          to_char(c.access_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))),
      updated_at = now()
  from cafe24_private.connections c
  where s.id = p_auth_settings_id
    and c.auth_settings_id = s.id
    and p_access_token is not null
    and jsonb_typeof(s.providers -> 'cafe24') = 'object';
  perform set_config('cafe24_private.writing_token_copy', 'off', true);
end
$$;

-- The previous release's copy_access_token, called after a connect by functions of that release
-- (between `db push` and `functions deploy`), whose rows still hold plaintext: copies the
-- private row's access token through copy_access_token(uuid, text). Remove once no such
-- function can run.
create or replace function cafe24_private.copy_access_token(p_auth_settings_id uuid)
returns void
language sql
set search_path = ''
as $$
  select cafe24_private.copy_access_token(c.auth_settings_id, c.access_token)
  from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
$$;

revoke all on function cafe24_private.copy_access_token(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.copy_access_token(uuid, text)
  from public, anon, authenticated;
