-- A pair that lands from a pending connection is sealed for that pending connection until the
-- functions reseal it for its row, right after. Should that reseal fail on every retry, nothing
-- could open the pair again and the mall would stop refreshing until its owner reconnected. The
-- connection row now keeps the pending connection's handle hash (with the token_version of the
-- pair it was written for) from the transaction the pair lands in until a reseal writes the pair
-- for the row; the scheduled background pass reseals such rows from there.

alter table cafe24_private.connections add column if not exists sealed_for bytea;
alter table cafe24_private.connections add column if not exists sealed_for_version bigint;

-- Empty but for the moments between a connect and its reseal, and after a reseal that failed.
create index if not exists connections_sealed_for_idx on cafe24_private.connections (auth_settings_id)
  where sealed_for is not null;

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

revoke all on function cafe24_private.connections_sealed_for_pending(integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.note_sealed_for(uuid, bytea)
  from public, anon, authenticated;
