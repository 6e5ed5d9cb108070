-- Hardening found by attacking the running stack.

-- ---------------------------------------------------------------------------------------------
-- The token-free drop-in view removed only top-level keys that end like a credential, so nested
-- credentials (google.oauth.refresh_token, tokens[].access_token), keys such as apiKey or
-- private_key, and a provider stored as a bare string ("slack_token": "xoxb-…") came through.
-- Now each provider keeps only its top-level scalar settings whose names do not look like a
-- credential; nested objects and arrays, and providers that are not objects, are dropped: what
-- they hold cannot be told apart from a credential. (Cafe24's shops, scopes and warning are in
-- public.cafe24_connections.) Written without nested calls: browser roles reach this function
-- only through the view and have no USAGE on cafe24_private.
-- ---------------------------------------------------------------------------------------------
create or replace function cafe24_private.without_credentials(p_providers jsonb)
returns jsonb
language sql
immutable
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
          where jsonb_typeof(field.value) not in ('object', 'array')
            and (
              field.key ~* '_expires_at$'
              or field.key !~* '(token|secret|passw|key|credential|auth|cookie|session|signature|cert)'
            )
        ), '{}'::jsonb)
      )
      from jsonb_each(p_providers) provider
      where jsonb_typeof(provider.value) = 'object'
    ), '{}'::jsonb)
  end
$$;

-- ---------------------------------------------------------------------------------------------
-- Two authorize calls of one user at once could deadlock in record_oauth_state: each inserted
-- its nonce, then each trimmed the user's oldest states, locking rows in different orders.
-- A per-user lock makes the insert and the trim one step per user.
-- ---------------------------------------------------------------------------------------------
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

-- ---------------------------------------------------------------------------------------------
-- Pending connections per user. Each one is a live pair at Cafe24 for up to 10 minutes; without a
-- bound, one account could park as many as Cafe24 would issue. Over the bound the callback
-- revokes the new pair at once and ends with TOO_MANY_PENDING_CONNECTIONS.
-- ---------------------------------------------------------------------------------------------
create or replace function cafe24_private.max_pending_connections()
returns integer
language sql
immutable
set search_path = ''
as $$ select 5 $$;

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

create index if not exists pending_connections_user_id_idx
  on cafe24_private.pending_connections (user_id);

revoke all on function cafe24_private.max_pending_connections() from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- Expired pending connections: removed only once their pair is revoked. Taking them deleted the
-- rows before the revocation, so a revoke refused by Cafe24 (429 under a flood) left a live pair
-- that nobody held. Now a sweep leases each row for a while and the function settles it: revoked
-- (or, after max_pending_revoke_attempts(), given up on and logged) → deleted; otherwise it comes
-- back at a later sweep.
-- ---------------------------------------------------------------------------------------------
alter table cafe24_private.pending_connections
  add column if not exists revoke_attempts integer not null default 0,
  add column if not exists next_revoke_at timestamptz;

create or replace function cafe24_private.max_pending_revoke_attempts()
returns integer
language sql
immutable
set search_path = ''
as $$ select 6 $$;

-- Replaced by lease_expired_pending_connections below (which keeps the rows).
drop function if exists cafe24_private.take_expired_pending_connections(integer);

-- Leases up to p_limit expired pending connections for revocation: each is held for 2, 4, 8, …
-- minutes by attempt, so a sweep that dies leaves it for a later one.
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

revoke all on function cafe24_private.max_pending_revoke_attempts() from public, anon, authenticated;
revoke all on function cafe24_private.lease_expired_pending_connections(integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.settle_expired_pending_connection(bytea, boolean)
  from public, anon, authenticated;
