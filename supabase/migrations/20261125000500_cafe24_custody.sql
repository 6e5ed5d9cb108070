-- Custody: a connection belongs to the person who started it, and tokens never reach a browser.
--
-- Why two steps to connect: Cafe24's redirect to cafe24-callback proves only that the mall's
-- operator approved *some* authorization request. If the callback attached the tokens to the
-- account that started the request, anyone could start a request for someone else's mall, send
-- the operator the Cafe24 link, and receive the mall's tokens once the operator approves. So the
-- callback exchanges the code at once (codes die after a minute) and parks the pair here, under a
-- hash of a random handle; only the session of the user who started the flow can complete it
-- (cafe24-callback POST). That completion proves that the person signed in to the app also
-- controls the mall at Cafe24, so it takes the mall over from any other account that held it.

-- ---------------------------------------------------------------------------------------------
-- Pending connections
-- ---------------------------------------------------------------------------------------------

create table if not exists cafe24_private.pending_connections (
  -- SHA-256 of the handle given to the browser; the handle itself is never stored.
  handle_hash bytea primary key check (length(handle_hash) = 32),
  user_id uuid not null,
  mall_id text not null,
  -- The scopes the user asked for, as signed into the OAuth state.
  requested_scopes text[] not null default '{}',
  -- The pair as it will be stored under providers.cafe24 (see store_connection).
  tokens jsonb not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);

comment on table cafe24_private.pending_connections is
  'Token pairs from a finished Cafe24 authorization, waiting for the initiating user''s session to complete them (cafe24-callback POST). Single use; expire after 10 minutes.';

create index if not exists pending_connections_expires_at_idx
  on cafe24_private.pending_connections (expires_at);

-- How long a pending connection waits for its completion.
create or replace function cafe24_private.pending_connection_ttl()
returns interval
language sql
immutable
set search_path = ''
as $$ select interval '10 minutes' $$;

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

  if coalesce(v_entry ->> 'refresh_token', v_entry ->> 'access_token', '') <> '' then
    v_removed := jsonb_strip_nulls(jsonb_build_object(
      'access_token', v_entry -> 'access_token',
      'refresh_token', v_entry -> 'refresh_token'
    ));
  end if;

  update public.auth_settings
  set providers = jsonb_set(
        providers,
        '{cafe24}',
        v_entry - cafe24_private.cafe24_credential_keys()
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
-- Completing a connection
-- ---------------------------------------------------------------------------------------------

-- Uses a pending connection up (exactly once) for the user presenting its handle.
--   invalid   no such handle: never issued, used already, or cleaned up;
--   expired   issued, but older than pending_connection_ttl(): destroyed, tokens returned so
--             the caller revokes them;
--   mismatch  another user's handle: destroyed, tokens returned for revocation, nothing stored;
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
  if v_pending.expires_at <= now() then
    return query select 'expired'::text, null::uuid, v_pending.mall_id,
      v_pending.requested_scopes, v_pending.tokens, null::jsonb, null::jsonb;
    return;
  end if;
  if v_pending.user_id is distinct from p_user_id then
    return query select 'mismatch'::text, null::uuid, v_pending.mall_id,
      v_pending.requested_scopes, v_pending.tokens, null::jsonb, null::jsonb;
    return;
  end if;

  perform pg_advisory_xact_lock(
    hashtextextended('cafe24_private.mall:' || v_pending.mall_id, 0));

  select stored.id, stored.replaced into v_id, v_replaced
  from cafe24_private.store_connection(
    v_pending.user_id, v_pending.mall_id, v_pending.tokens, p_connected_at) stored;

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

-- Takes up to p_limit pending connections that expired without completion, for a function to
-- revoke their pairs at Cafe24. SQL never calls Cafe24 itself: that would carry the client
-- secret through pg_net's queue.
create or replace function cafe24_private.take_expired_pending_connections(p_limit integer)
returns table (mall_id text, tokens jsonb)
language sql
set search_path = ''
as $$
  with gone as (
    delete from cafe24_private.pending_connections p
    where p.handle_hash in (
      select e.handle_hash from cafe24_private.pending_connections e
      where e.expires_at <= now()
      order by e.expires_at
      limit greatest(p_limit, 0)
      for update skip locked
    )
    returning p.mall_id, p.tokens
  )
  select gone.mall_id, gone.tokens from gone
$$;

-- ---------------------------------------------------------------------------------------------
-- What the browser may read
-- ---------------------------------------------------------------------------------------------

-- providers with every credential removed from every provider's entry: keys ending in token,
-- secret, password or api_key (but not *_expires_at). The test is written inline rather than as a
-- helper function: the browser roles reach this function only through the views below and have
-- no USAGE on cafe24_private, which a nested call would need.
create or replace function cafe24_private.without_credentials(p_providers jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select case
    when jsonb_typeof(p_providers) is distinct from 'object' then p_providers
    else coalesce((
      select jsonb_object_agg(
        provider.key,
        case
          when jsonb_typeof(provider.value) = 'object' then coalesce((
            select jsonb_object_agg(field.key, field.value)
            from jsonb_each(provider.value) field
            where not (field.key ~* '(token|secret|password|api_key)$'
              and field.key !~* '_expires_at$')
          ), '{}'::jsonb)
          else provider.value
        end
      )
      from jsonb_each(p_providers) provider
    ), '{}'::jsonb)
  end
$$;

-- The signed-in user's Cafe24 connections, without any token. Owned by the migration's role and
-- not security_invoker on purpose: authenticated has no grant on auth_settings or cafe24_private,
-- and the auth.uid() filter below is what limits each user to their own rows.
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

-- Drop-in for browser code that selected auth_settings: the same columns, the caller's rows
-- only, every provider's credential keys removed.
create or replace view public.auth_settings_without_tokens
with (security_barrier = true)
as
select
  s.id,
  s.org_id,
  s.user_id,
  cafe24_private.without_credentials(s.providers) as providers,
  s.created_at,
  s.updated_at
from public.auth_settings s
where s.user_id = (select auth.uid());

comment on view public.auth_settings_without_tokens is
  'public.auth_settings for the browser: the signed-in user''s rows, with every token and secret removed from providers.';

revoke all on public.cafe24_connections from public, anon, authenticated;
revoke all on public.auth_settings_without_tokens from public, anon, authenticated;
grant select on public.cafe24_connections to authenticated, service_role;
grant select on public.auth_settings_without_tokens to authenticated, service_role;

revoke all on table cafe24_private.pending_connections from public, anon, authenticated;
revoke all on function cafe24_private.pending_connection_ttl() from public, anon, authenticated;
revoke all on function cafe24_private.record_pending_connection(bytea, uuid, text, text[], jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.cafe24_credential_keys() from public, anon, authenticated;
revoke all on function cafe24_private.disconnect_connection(uuid, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.complete_pending_connection(bytea, uuid, timestamptz)
  from public, anon, authenticated;
revoke all on function cafe24_private.take_expired_pending_connections(integer)
  from public, anon, authenticated;
-- A view checks EXECUTE on the functions it calls as the querying role. This one is pure (it only
-- removes keys from the JSON it is given), and authenticated has no USAGE on cafe24_private, so
-- it can call it only through the view.
revoke all on function cafe24_private.without_credentials(jsonb) from public, anon;
grant execute on function cafe24_private.without_credentials(jsonb) to authenticated;
