-- Handing a connection's access token to the app's server code (cafe24-token): read the
-- connection a request names, and, when its token is too close to expiry, claim exactly that
-- connection for a refresh run with trigger 'token'. The refresh itself is the one every run does
-- (store_refreshed_tokens / record_refresh_failure, compare-and-swap on the token_version claimed),
-- so a token request and a scheduled run can never both send one refresh token: whoever holds
-- the lease refreshes, the other waits for it to end.

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

-- Claims one named connection for the run, if the run's rules say it is due: the verdict comes
-- from refresh_verdict, the same rules the census and claim_due_pairs read,
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
  select cafe24_private.refresh_verdict(c, v_scope) into v_verdict
  from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id;

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

-- Privileges: only the functions' owner calls them.
revoke all on function cafe24_private.token_connections(uuid, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_connection_pair(uuid, uuid)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_connection(uuid, uuid)
  from public, anon, authenticated;
