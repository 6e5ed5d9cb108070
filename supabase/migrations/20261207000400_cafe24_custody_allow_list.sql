-- The drop-in view public.auth_settings_without_tokens keeps settings by an allow-list instead of
-- dropping credential-like names: a name cannot tell a credential apart (pwd, passphrase, jwt,
-- bearer, dsn, pat, otp_seed, code, a URL with a password). Cafe24 shows its documented settings;
-- other providers show the keys the operator lists in cafe24_private.view_allowed_keys (empty at
-- first). service_role could select the view but not execute without_credentials, so every select
-- it made failed; it now executes it and sees every row.

-- The keys of other providers' settings that public.auth_settings_without_tokens shows, as the
-- operator lists them (provider, key): empty by default, so another provider shows nothing until
-- someone decides that a key is not a credential. Only service_role and the owner write it. A row
-- cannot name Cafe24's tokens, so a slip here never shows them.
create table if not exists cafe24_private.view_allowed_keys (
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

-- Drop-in for code that selected auth_settings: the same columns, providers without credentials
-- (without_credentials). A browser (authenticated) sees its own rows; service_role, which reads
-- auth_settings whole anyway, sees every row, so server code can use the drop-in too.
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
where s.user_id = (select auth.uid()) or current_user = 'service_role';

comment on view public.auth_settings_without_tokens is
  'public.auth_settings without credentials: the signed-in user''s rows (every row for service_role); providers keeps only allowed scalar settings (cafe24_private.without_credentials).';

revoke all on table cafe24_private.view_allowed_keys from public, anon, authenticated;
grant select, insert, update, delete on table cafe24_private.view_allowed_keys to service_role;
revoke all on function cafe24_private.cafe24_setting_keys() from public, anon, authenticated;
grant execute on function cafe24_private.without_credentials(jsonb) to service_role;

-- A stranger's refused or abandoned attempt no longer costs the mall's holder its connection:
-- when a new grant ends a mall's older pairs (Cafe24 does not say whether it does), revoking the
-- new pair left the holder reconnect_required. The pair now goes to the holder's connection when
-- it was granted every scope the holder's was (give_pair_to_holder), from a refused completion
-- (complete_pending_connection) and from the sweep of expired ones
-- (give_expired_pending_to_holder); it is revoked only when the mall has no such holder.

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
begin
  if coalesce(p_mall_id, '') = '' or not coalesce(cafe24_private.is_complete_token_pair(p_tokens), false)
  then
    return;
  end if;

  select s.id, s.providers -> 'cafe24' into v_id, v_entry
  from cafe24_private.connections c
  join public.auth_settings s on s.id = c.auth_settings_id
  where c.mall_id = p_mall_id
    and c.row_state = 'ok'
    and c.status <> 'disconnected'
    and jsonb_typeof(s.providers -> 'cafe24') = 'object'
    and s.providers -> 'cafe24' ->> 'mall_id' = p_mall_id
    and coalesce(s.providers -> 'cafe24' ->> 'refresh_token', '') <> ''
  order by s.updated_at desc, s.id
  limit 1
  for update of s;

  if v_id is null
    or coalesce(v_entry ->> 'refresh_token', '') = p_tokens ->> 'refresh_token'
    or not (
      case when jsonb_typeof(v_entry -> 'scopes') = 'array' then v_entry -> 'scopes' else '[]'::jsonb end
      <@ case when jsonb_typeof(p_tokens -> 'scopes') = 'array' then p_tokens -> 'scopes' else '[]'::jsonb end
    )
  then
    return;
  end if;

  replaced := jsonb_strip_nulls(jsonb_build_object(
    'mall_id', v_entry -> 'mall_id',
    'access_token', v_entry -> 'access_token',
    'refresh_token', v_entry -> 'refresh_token'
  ));
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
    return query select
      case when v_pending.expires_at <= now() then 'expired' else 'mismatch' end::text,
      v_id, v_pending.mall_id, v_pending.requested_scopes,
      case when v_id is null then v_pending.tokens end, null::jsonb, v_replaced;
    return;
  end if;

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
    delete from cafe24_private.pending_connections p where p.handle_hash = p_handle_hash;
  end if;
end
$$;

revoke all on function cafe24_private.give_pair_to_holder(text, jsonb)
  from public, anon, authenticated;
revoke all on function cafe24_private.give_expired_pending_to_holder(bytea)
  from public, anon, authenticated;
