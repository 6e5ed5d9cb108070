-- Tokens sealed by the functions at rest. The functions now write both tokens sealed (AES-256-GCM
-- under a key ring only they hold); SQL stores what it is given. What changes here:
-- store_refreshed_tokens copies the plaintext access token it is handed for
-- CAFE24_PLAINTEXT_TOKEN_COPY instead of the stored (sealed) one, and the background resealing
-- that brings legacy plaintext and rows under an earlier key to the active key gets its three
-- functions and a view of how many rows each key protects.

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
    set access_token = p_access_token, refresh_token = p_refresh_token
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
revoke all on function cafe24_private.connection_tokens(uuid) from public, anon, authenticated;
revoke all on function cafe24_private.reseal_tokens(uuid, bigint, text, text)
  from public, anon, authenticated;

-- Lets go of a claimed connection whose refresh token the function could not open (its key is
-- not in the ring, or the value was moved or forged): no request was sent, so no failure is
-- recorded (consecutive_failures and the error stay as they are, never reconnect_required).
-- Unlike release_leases it keeps last_claimed_at, so the same run does not claim it again, and
-- it holds the row back for 10 minutes (next_attempt_at): rows nobody can open would otherwise
-- stay the most overdue and take every claim of every run ahead of the malls that can be
-- refreshed. A restored key brings the row back within those 10 minutes.
create or replace function cafe24_private.set_aside_unopened(p_run_id uuid, p_auth_settings_id uuid)
returns boolean
language sql
set search_path = ''
as $$
  with released as (
    update cafe24_private.connections
    set lease_id = null, lease_expires_at = null, in_flight_since = null,
      next_attempt_at = now() + interval '10 minutes', updated_at = now()
    where lease_id = p_run_id and auth_settings_id = p_auth_settings_id
    returning 1
  )
  select exists (select 1 from released)
$$;

revoke all on function cafe24_private.set_aside_unopened(uuid, uuid)
  from public, anon, authenticated;

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

revoke all on function cafe24_private.copy_access_token(uuid, text)
  from public, anon, authenticated;
