-- Connecting a mall: the OAuth state nonces that cafe24-authorize issues and cafe24-callback
-- consumes, and the SQL functions that store what the callback brings back.
--
-- Why nonces in the database when the state is already signed: a signature proves that we issued
-- the state, not that it has not been used. Cafe24's code dies after a minute, but a state lives
-- ten; recording the nonce and deleting it on use makes every state good for exactly one callback.

create table if not exists cafe24_private.oauth_states (
  nonce text primary key,
  user_id uuid not null,
  mall_id text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);

comment on table cafe24_private.oauth_states is
  'OAuth state nonces issued by cafe24-authorize; cafe24-callback deletes each one when it uses it.';

create index if not exists oauth_states_expires_at_idx on cafe24_private.oauth_states (expires_at);
create index if not exists oauth_states_user_id_idx
  on cafe24_private.oauth_states (user_id, created_at desc);

-- How many unused states one user may hold at once. Generous for tabs opened in parallel; stops
-- one account from filling the table between two cleanups.
create or replace function cafe24_private.max_open_oauth_states()
returns integer
language sql
immutable
set search_path = ''
as $$ select 20 $$;

-- Records a nonce that cafe24-authorize just put into a signed state. The user's oldest open
-- states beyond max_open_oauth_states() are dropped (their callbacks then fail as replayed).
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

-- Deletes states nobody used. Scheduled below; returns how many went.
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
-- does not leave stale values beside the new tokens. The new refresh token (or mall) makes the
-- sync trigger reset the connection's refresh state: reconnect_required, failures, backoff, lease.
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
  if coalesce(v_entry ->> 'refresh_token', '') not in ('', p_tokens ->> 'refresh_token') then
    replaced := jsonb_strip_nulls(jsonb_build_object(
      'mall_id', v_entry -> 'mall_id',
      'access_token', v_entry -> 'access_token',
      'refresh_token', v_entry -> 'refresh_token'
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
-- providers.cafe24.last_warning = {code, message, at}: the connection itself stands. It lives in
-- providers so that the app's settings page, which reads its own row through RLS, can show it;
-- cafe24_private is not reachable from the app.
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

revoke all on table cafe24_private.oauth_states from public, anon, authenticated;
grant select on table cafe24_private.oauth_states to service_role;
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

-- Hourly cleanup of states nobody used. Scheduling by name updates instead of duplicating.
do $$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron') then
    perform cron.schedule('cafe24-oauth-states-cleanup', '41 * * * *',
      'select cafe24_private.delete_expired_oauth_states()');
  else
    raise notice 'pg_cron is not installed: expired OAuth states will not be cleaned up on a schedule';
  end if;
end
$$;
