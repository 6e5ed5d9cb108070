-- Settling a claimed connection: store the pair Cafe24 returned, or record why there is none.
-- Either call can claim the run's next connection in the same round trip, under the run's scope
-- read from its row (supabase/migrations/..._cafe24_claim.sql).

-- A pair worth storing: non-empty access and refresh tokens and an expiry this project can read.
-- The last line of defence: whatever the caller parsed, SQL never writes a pair that would erase
-- or blank a token.
create or replace function cafe24_private.is_complete_token_pair(p_tokens jsonb)
returns boolean
language sql
stable
set search_path = ''
as $$
  select jsonb_typeof(p_tokens) = 'object'
    and jsonb_typeof(p_tokens -> 'refresh_token') = 'string'
    and jsonb_typeof(p_tokens -> 'access_token') = 'string'
    and p_tokens ->> 'refresh_token' <> ''
    and p_tokens ->> 'access_token' <> ''
    and cafe24_private.parse_instant(p_tokens -> 'expires_at') is not null
$$;

-- What settling returns: the outcome, and the next connection claimed in the same round trip
-- (all null when none was).
do $$
begin
  if to_regtype('cafe24_private.settled_step') is null then
    create type cafe24_private.settled_step as (
      outcome text,
      next_auth_settings_id uuid,
      next_mall_id text,
      next_refresh_token text,
      next_consecutive_failures integer,
      next_answer_possibly_lost boolean
    );
  end if;
  if to_regtype('cafe24_private.refresh_failure') is null then
    create type cafe24_private.refresh_failure as (
      -- A code of REFRESH_FAILURES (supabase/functions/_shared/platform/errors.ts).
      code text,
      message text,
      -- No more automatic attempts until the mall reconnects.
      permanent boolean,
      -- The request may have reached Cafe24 (timeout, reset, 5xx, malformed 200), so Cafe24 may
      -- have rotated the token: remembered to explain a later rejection.
      outcome_unknown boolean,
      -- Transient failures: the earliest next attempt.
      next_attempt_at timestamptz
    );
  end if;
end
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
    from cafe24_private.claim_due_connections(p_run_id, 1) c;
    if found then
      return;
    end if;
  end if;
  return query select p_outcome, null::uuid, null::text, null::text, null::integer,
    null::boolean;
end
$$;

-- Writes a refreshed pair the moment Cafe24 returns it. Compare-and-swap on the refresh token
-- that was sent: if the row now holds another token (the owner reconnected meanwhile), the newer
-- tokens stay and the outcome is 'superseded'. The pair is merged into providers.cafe24 here, in
-- SQL, so every other key (scope, shop_no, board_no, …) and every other provider survives.
-- The sync trigger then clears failures, backoff and the lease: the new token is a new start.
-- With p_claim_next, the run's next connection is claimed in the same round trip.
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
  v_stored boolean;
  v_outcome text;
begin
  if not cafe24_private.is_complete_token_pair(p_tokens) then
    raise exception 'store_refreshed_tokens: tokens must carry non-empty access_token, refresh_token and an ISO-8601 expires_at'
      using errcode = '22023';
  end if;

  update public.auth_settings s
  set providers = jsonb_set(s.providers, '{cafe24}', (s.providers -> 'cafe24') || p_tokens),
      updated_at = now()
  where s.id = p_auth_settings_id
    and jsonb_typeof(s.providers -> 'cafe24') = 'object'
    and s.providers -> 'cafe24' ->> 'refresh_token' = p_used_refresh_token
  returning true into v_stored;

  if v_stored then
    update cafe24_private.connections
    set last_refreshed_at = now()
    where auth_settings_id = p_auth_settings_id;
    v_outcome := 'stored';
  elsif exists (
    -- Already written: this is a retry of a store whose answer the caller never received.
    select 1 from public.auth_settings s
    where s.id = p_auth_settings_id
      and s.providers -> 'cafe24' ->> 'refresh_token' = p_tokens ->> 'refresh_token'
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

-- Records a failed refresh. Never touches the tokens. Outcomes:
--   'already_rotated'    the row holds another refresh token now (another worker or a reconnect
--                        won): not a failure of this connection;
--   'lease_lost'         the run's lease ran out and someone else holds the row: nothing
--                        is recorded;
--   'reconnect_required' a permanent failure: no more automatic attempts until the mall
--                        reconnects;
--   'retry_scheduled'    transient: next attempt at the failure's next_attempt_at.
-- With p_claim_next, the run's next connection is claimed in the same round trip.
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
  v_current_token text;
  v_connection cafe24_private.connections%rowtype;
  v_outcome text;
begin
  select * into v_connection
  from cafe24_private.connections
  where auth_settings_id = p_auth_settings_id
  for update;

  select s.providers -> 'cafe24' ->> 'refresh_token' into v_current_token
  from public.auth_settings s
  where s.id = p_auth_settings_id;

  if v_current_token is distinct from p_used_refresh_token then
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

revoke all on all functions in schema cafe24_private from public, anon, authenticated;
