-- Connection events: every change of a connection's state, written to an append-only outbox and
-- delivered to the app's webhook (cafe24-events); the per-mall bookkeeping behind Cafe24's
-- app-uninstalled notice (cafe24-webhook); and the lookup behind cafe24-disconnect.
--
-- Why a trigger on cafe24_private.connections: every state transition (a refresh, a failure, a
-- connect, a takeover, a disconnect) ends up there, whichever SQL function made it, so one trigger
-- sees them all and no state transition has to remember to write an event. The event is written in
-- the transaction of the change itself: it exists exactly when the change does. Sending it is
-- another function's job, in its own transactions, so a slow or broken webhook never holds up a
-- refresh.

-- ---------------------------------------------------------------------------------------------
-- The events
-- ---------------------------------------------------------------------------------------------

create table cafe24_private.connection_events (
  id bigserial primary key,
  -- No foreign key: an event outlives the auth_settings row it describes.
  auth_settings_id uuid not null,
  user_id uuid,
  mall_id text,
  -- connected           new credentials on the row (the connect flow, or tokens written to a row
  --                     that had none);
  -- recovered           a successful refresh after one or more failed ones;
  -- reconnect_required  Cafe24 refused the refresh token; the owner must connect again;
  -- taken_over          another account connected the same mall (code CONNECTION_TAKEN_OVER);
  -- disconnected        the tokens were removed on purpose; code says why (DISCONNECTED_BY_USER,
  --                     DISCONNECTED_BY_APP, APP_UNINSTALLED).
  type text not null
    check (type in ('connected', 'recovered', 'reconnect_required', 'taken_over', 'disconnected')),
  -- The stable code behind the change (connections.last_error_code); never a message, never a
  -- token.
  code text check (code is null or code ~ '^[A-Z][A-Z0-9_]{2,63}$'),
  occurred_at timestamptz not null default now()
);

comment on table cafe24_private.connection_events is
  'Append-only history of Cafe24 connection state changes (written by a trigger on connections). Ids and codes only, never a token.';

create index connection_events_auth_settings_id_idx
  on cafe24_private.connection_events (auth_settings_id, id);

-- Delivery state lives beside the events, keyed by event id, so that the events themselves are
-- never updated.
create table cafe24_private.connection_event_deliveries (
  event_id bigint primary key references cafe24_private.connection_events (id),
  -- Copied from the event: delivery is in order per connection.
  auth_settings_id uuid not null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  -- Held by the delivering invocation while its request is in flight; outlives the request's
  -- timeout, so no second invocation sends the event (or the connection's next one) meanwhile.
  lease_id uuid,
  lease_expires_at timestamptz,
  delivered_at timestamptz,
  last_status integer,
  last_error text
);

comment on table cafe24_private.connection_event_deliveries is
  'Webhook delivery state of each connection event (cafe24-events). Changed only by claim_event_deliveries, settle_event_delivery and defer_event_deliveries.';

-- The undelivered events, per connection in order (the head of each connection is what may be
-- sent), and by due time (whether the cron tick has anything to do).
create index connection_event_deliveries_pending_idx
  on cafe24_private.connection_event_deliveries (auth_settings_id, event_id)
  where delivered_at is null;
create index connection_event_deliveries_due_idx
  on cafe24_private.connection_event_deliveries (next_attempt_at)
  where delivered_at is null;

-- Connection events are kept for 90 days, delivered or not (trim_connection_events), so the
-- outbox does not grow with every connect, takeover and disconnect forever.
create or replace function cafe24_private.connection_event_retention()
returns interval
language sql
immutable
set search_path = ''
as $$ select interval '90 days' $$;

-- History is not rewritten: not by the Data API roles (no grants), and not by the owner either.
-- The trigger refuses every update, and every delete except the trim's own, which it marks with a
-- transaction-local setting.
create or replace function cafe24_private.refuse_event_rewrite()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE'
    and current_setting('cafe24_private.trimming_events', true) = 'on'
    and old.occurred_at < now() - cafe24_private.connection_event_retention()
  then
    return old;
  end if;
  raise exception 'cafe24_private.connection_events is append-only'
    using errcode = '42501';
end
$$;

create trigger connection_events_append_only
  before update or delete on cafe24_private.connection_events
  for each row execute function cafe24_private.refuse_event_rewrite();

-- Compares a connection's state before and after a change and writes the event it amounts to, if
-- any. Reads nothing but the row: connections.connected_at is providers.cafe24.connected_at as
-- the sync trigger last saw it, which only a connect changes (a refresh and a reconnect both
-- bring a new pair; connected_at tells them apart). The update trigger's WHEN runs it only when
-- status, consecutive_failures, row_state, mall_id or connected_at change, so a plain refresh
-- (which changes none of them) never calls it.
create or replace function cafe24_private.record_connection_event()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_type text;
  v_code text;
  v_event_id bigint;
begin
  if tg_op = 'INSERT' then
    if new.row_state = 'ok' then
      v_type := 'connected';
    end if;
  elsif new.status = 'disconnected' and old.status <> 'disconnected' then
    v_type := case
      when new.last_error_code = 'CONNECTION_TAKEN_OVER' then 'taken_over'
      else 'disconnected'
    end;
    v_code := new.last_error_code;
  elsif new.row_state = 'ok' and (
    old.row_state <> 'ok'
    or old.status = 'disconnected'
    or old.mall_id is distinct from new.mall_id
    or old.connected_at is distinct from new.connected_at
  ) then
    v_type := 'connected';
  elsif new.status = 'reconnect_required' and old.status <> 'reconnect_required' then
    v_type := 'reconnect_required';
    v_code := new.last_error_code;
  elsif new.row_state = 'ok' and new.status = 'active' and (
    old.status = 'reconnect_required'
    or (old.consecutive_failures > 0 and new.consecutive_failures = 0)
  ) then
    v_type := 'recovered';
  end if;

  if v_type is not null then
    insert into cafe24_private.connection_events (auth_settings_id, user_id, mall_id, type, code)
    values (
      new.auth_settings_id, new.user_id, new.mall_id, v_type,
      case when v_code ~ '^[A-Z][A-Z0-9_]{2,63}$' then v_code end
    )
    returning id into v_event_id;
    insert into cafe24_private.connection_event_deliveries (event_id, auth_settings_id)
    values (v_event_id, new.auth_settings_id);
  end if;
  return null;
end
$$;

create trigger record_cafe24_connection_event
  after insert on cafe24_private.connections
  for each row execute function cafe24_private.record_connection_event();

create trigger record_cafe24_connection_event_update
  after update on cafe24_private.connections
  for each row when (
    old.status is distinct from new.status
    or old.consecutive_failures is distinct from new.consecutive_failures
    or old.row_state is distinct from new.row_state
    or old.mall_id is distinct from new.mall_id
    or old.connected_at is distinct from new.connected_at
  )
  execute function cafe24_private.record_connection_event();

-- Deletes events older than connection_event_retention() (and their delivery rows), oldest
-- first, at most p_limit per call; returns how many went. pg_cron job cafe24-trim-events, daily.
create or replace function cafe24_private.trim_connection_events(p_limit integer default 10000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_ids bigint[];
begin
  select coalesce(array_agg(e.id), '{}') into v_ids from (
    select id from cafe24_private.connection_events
    where occurred_at < now() - cafe24_private.connection_event_retention()
    order by id
    limit greatest(p_limit, 0)
  ) e;
  perform set_config('cafe24_private.trimming_events', 'on', true);
  delete from cafe24_private.connection_event_deliveries where event_id = any(v_ids);
  delete from cafe24_private.connection_events where id = any(v_ids);
  perform set_config('cafe24_private.trimming_events', 'off', true);
  return coalesce(array_length(v_ids, 1), 0);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Delivering them (cafe24-events)
-- ---------------------------------------------------------------------------------------------

-- The events that may be sent now, oldest first, at most p_limit: of each connection only its
-- oldest undelivered event, and only when that one is due and not leased. An event that keeps
-- failing therefore holds back its connection's later events (the receiver sees each
-- connection's events in order) and nobody else's.
create or replace function cafe24_private.due_event_heads(p_limit integer)
returns setof bigint
language sql
stable
set search_path = ''
as $$
  select h.event_id
  from (
    select distinct on (d.auth_settings_id) d.event_id, d.next_attempt_at, d.lease_expires_at
    from cafe24_private.connection_event_deliveries d
    where d.delivered_at is null
    order by d.auth_settings_id, d.event_id
  ) h
  where h.next_attempt_at <= now()
    and (h.lease_expires_at is null or h.lease_expires_at <= now())
  order by h.event_id
  limit greatest(p_limit, 0)
$$;

-- Leases up to p_limit of the due_event_heads and counts the attempt.
create or replace function cafe24_private.claim_event_deliveries(
  p_lease_id uuid,
  p_limit integer,
  p_lease_duration interval
)
returns table (
  event_id bigint,
  attempts integer,
  auth_settings_id uuid,
  user_id uuid,
  mall_id text,
  type text,
  code text,
  occurred_at timestamptz
)
language plpgsql
set search_path = ''
as $$
declare
  v_ids bigint[];
begin
  select array_agg(head) into v_ids from cafe24_private.due_event_heads(p_limit) head;

  if v_ids is null then
    return;
  end if;

  -- A concurrent claim of the same head waits for this update, then finds it leased.
  return query
  with claimed as (
    update cafe24_private.connection_event_deliveries d
    set lease_id = p_lease_id,
        lease_expires_at = now() + p_lease_duration,
        attempts = d.attempts + 1
    where d.event_id = any (v_ids)
      and d.delivered_at is null
      and (d.lease_expires_at is null or d.lease_expires_at <= now())
    returning d.event_id, d.attempts
  )
  select k.event_id, k.attempts, e.auth_settings_id, e.user_id, e.mall_id, e.type, e.code,
    e.occurred_at
  from claimed k
  join cafe24_private.connection_events e on e.id = k.event_id
  order by k.event_id;
end
$$;

-- Records the outcome of one delivery attempt:
--   'delivered'        the receiver accepted it (also when this lease had run out: a success is a
--                      success, and the receiver must expect duplicates anyway);
--   'retry_scheduled'  failed; next attempt at p_next_attempt_at;
--   'lease_lost'       failed, and the lease had run out and passed on: nothing recorded.
create or replace function cafe24_private.settle_event_delivery(
  p_event_id bigint,
  p_lease_id uuid,
  p_delivered boolean,
  p_status integer,
  p_error text,
  p_next_attempt_at timestamptz
)
returns text
language plpgsql
set search_path = ''
as $$
begin
  if p_delivered then
    update cafe24_private.connection_event_deliveries
    set delivered_at = now(), lease_id = null, lease_expires_at = null,
        last_status = p_status, last_error = null
    where event_id = p_event_id and delivered_at is null;
    return 'delivered';
  end if;

  update cafe24_private.connection_event_deliveries
  set next_attempt_at = coalesce(p_next_attempt_at, now()),
      lease_id = null, lease_expires_at = null,
      last_status = p_status, last_error = left(p_error, 300)
  where event_id = p_event_id and delivered_at is null and lease_id = p_lease_id;
  return case when found then 'retry_scheduled' else 'lease_lost' end;
end
$$;

-- Pushes every due, unleased undelivered event to p_until: with no webhook configured there is
-- nothing to send, and the cron tick should not call the function every minute for nothing.
create or replace function cafe24_private.defer_event_deliveries(p_until timestamptz)
returns integer
language sql
set search_path = ''
as $$
  with deferred as (
    update cafe24_private.connection_event_deliveries d
    set next_attempt_at = p_until
    where d.delivered_at is null
      and d.next_attempt_at < p_until
      and (d.lease_expires_at is null or d.lease_expires_at <= now())
    returning 1
  )
  select count(*)::integer from deferred
$$;

-- cafe24-events' job (pg_cron job cafe24-events, every minute): one call when an event can be
-- sent (a due_event_heads row), through call_project_function like cafe24-refresh's job; null
-- when nothing can be sent (then there is no invocation at all, also while every pending event
-- waits for its backoff or for its connection's earlier event) or the call was refused.
create or replace function cafe24_private.invoke_cafe24_events()
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from cafe24_private.due_event_heads(1)) then
    return null;
  end if;
  return (cafe24_private.call_project_function(
    'cafe24-events', jsonb_build_object('trigger', 'cron'), 1)).request_ids[1];
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Cafe24's app-uninstalled notice (cafe24-webhook)
-- ---------------------------------------------------------------------------------------------

-- When each mall was last verified because of a notice. A notice is only a hint (anyone can send
-- one), so what it may cost is counted here, across every function instance.
create table cafe24_private.mall_verifications (
  mall_id text primary key,
  last_started_at timestamptz not null,
  -- A notice found the mall's access token dead (expired, or refused with 401): verifying would
  -- take a refresh, and a refresh rotates the grant, so a forged notice must never cause one. The
  -- verification waits for the mall's next refresh instead (claim_verifications_after_refresh).
  pending_since timestamptz
);

-- Finding the pending verifications after each refresh run reads only pending rows.
create index mall_verifications_pending_idx on cafe24_private.mall_verifications (pending_since)
  where pending_since is not null;

comment on table cafe24_private.mall_verifications is
  'Last verification of a mall prompted by a Cafe24 app notice (cafe24-webhook): at most one per mall per mall_verification_interval(); pending_since: waiting for the mall''s next refresh.';

-- At most one verification per mall within this interval.
create or replace function cafe24_private.mall_verification_interval()
returns interval
language sql
immutable
set search_path = ''
as $$ select interval '10 minutes' $$;

-- Starts a verification of p_mall_id if none started within mall_verification_interval(), and
-- returns the connections to verify with their access tokens; nothing when the mall has no
-- connection holding credentials (nothing is recorded for it either, so made-up mall ids leave
-- no rows) or when the last verification is too recent. Atomic: of two notices racing, one
-- gets the rows. A connection whose access token has expired comes back with a null token and
-- the mall's verification is left pending until its next refresh (pending_since): it is never
-- refreshed for a notice. Each row carries the token_version to disconnect with
-- (disconnect_connection_if_current). Named for the token_version its rows carry; the name
-- claim_mall_verification is the previous release's (below).
create or replace function cafe24_private.claim_mall_verification_pairs(p_mall_id text)
returns table (auth_settings_id uuid, access_token text, token_version bigint)
language plpgsql
set search_path = ''
as $$
begin
  if not exists (
    select 1 from cafe24_private.connections c
    where c.mall_id = p_mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
  ) then
    return;
  end if;

  insert into cafe24_private.mall_verifications as v (mall_id, last_started_at)
  values (p_mall_id, now())
  on conflict (mall_id) do update set last_started_at = excluded.last_started_at
  where v.last_started_at <= now() - cafe24_private.mall_verification_interval();
  if not found then
    return;
  end if;

  if exists (
    select 1 from cafe24_private.connections c
    where c.mall_id = p_mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
      and c.access_expires_at <= now()
  ) then
    update cafe24_private.mall_verifications v
    set pending_since = coalesce(v.pending_since, now())
    where v.mall_id = p_mall_id;
  end if;

  return query
  select c.auth_settings_id,
    case when c.access_expires_at <= now() then null else c.access_token end,
    c.token_version
  from cafe24_private.connections c
  where c.mall_id = p_mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
    and c.access_token is not null
  order by c.auth_settings_id;
end
$$;

-- Leaves p_mall_id's verification pending until its next refresh: Cafe24 refused the stored
-- access token (401), and only a refresh could get another.
create or replace function cafe24_private.defer_mall_verification(p_mall_id text)
returns void
language sql
set search_path = ''
as $$
  update cafe24_private.mall_verifications v
  set pending_since = coalesce(v.pending_since, now())
  where v.mall_id = p_mall_id
$$;

-- The pending verifications whose mall was refreshed since the notice (all malls, or only
-- p_mall_id), with the connections to verify and their new access tokens. Each is handed out
-- once: claiming clears pending_since and counts as a start. Pending rows of malls that no longer
-- have a connection holding credentials are cleared without a verification. Each row carries the
-- token_version to disconnect with.
create or replace function cafe24_private.claim_verification_pairs_after_refresh(
  p_mall_id text default null
)
returns table (mall_id text, auth_settings_id uuid, access_token text, token_version bigint)
language plpgsql
set search_path = ''
as $$
begin
  update cafe24_private.mall_verifications v
  set pending_since = null
  where v.pending_since is not null
    and (p_mall_id is null or v.mall_id = p_mall_id)
    and not exists (
      select 1 from cafe24_private.connections c
      where c.mall_id = v.mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
    );

  return query
  with claimed as (
    update cafe24_private.mall_verifications v
    set pending_since = null, last_started_at = now()
    where v.pending_since is not null
      and (p_mall_id is null or v.mall_id = p_mall_id)
      and exists (
        select 1 from cafe24_private.connections c
        where c.mall_id = v.mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
          and c.last_refreshed_at >= v.pending_since
      )
    returning v.mall_id
  )
  select c.mall_id, c.auth_settings_id, c.access_token, c.token_version
  from claimed
  join cafe24_private.connections c on c.mall_id = claimed.mall_id
  where c.row_state = 'ok' and c.status <> 'disconnected'
    and c.access_token is not null
  order by c.mall_id, c.auth_settings_id;
end
$$;

-- The previous release's claim_mall_verification and claim_verifications_after_refresh (no
-- token_version: its disconnect_connection_if_current compares the access token's text): kept
-- while functions of that release may still run.
create or replace function cafe24_private.claim_mall_verification(p_mall_id text)
returns table (auth_settings_id uuid, access_token text)
language sql
set search_path = ''
as $$
  select p.auth_settings_id, p.access_token
  from cafe24_private.claim_mall_verification_pairs(p_mall_id) p
$$;

create or replace function cafe24_private.claim_verifications_after_refresh(
  p_mall_id text default null
)
returns table (mall_id text, auth_settings_id uuid, access_token text)
language sql
set search_path = ''
as $$
  select p.mall_id, p.auth_settings_id, p.access_token
  from cafe24_private.claim_verification_pairs_after_refresh(p_mall_id) p
$$;

-- disconnect_connection, but only while the row still holds the pair that Cafe24's answer was
-- about (the token_version claim_mall_verification_pairs returned): a refresh or a reconnect in the
-- meantime means the answer is stale. Returns 'disconnected' or 'superseded'.
create or replace function cafe24_private.disconnect_connection_if_current(
  p_auth_settings_id uuid,
  p_token_version bigint,
  p_reason text
)
returns text
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from public.auth_settings s
  where s.id = p_auth_settings_id
  for update;
  perform 1 from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
    and c.token_version = p_token_version
  for update;
  if not found then
    return 'superseded';
  end if;
  perform cafe24_private.disconnect_connection(p_auth_settings_id, p_reason);
  return 'disconnected';
end
$$;

-- The previous release's disconnect_connection_if_current, called with the access token that
-- was verified: kept while functions of that release may still run. Compares the text as that
-- release did.
create or replace function cafe24_private.disconnect_connection_if_current(
  p_auth_settings_id uuid,
  p_access_token text,
  p_reason text
)
returns text
language plpgsql
set search_path = ''
as $$
begin
  perform 1 from public.auth_settings s
  where s.id = p_auth_settings_id
  for update;
  perform 1 from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
    and c.access_token = p_access_token
  for update;
  if not found then
    return 'superseded';
  end if;
  perform cafe24_private.disconnect_connection(p_auth_settings_id, p_reason);
  return 'disconnected';
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Disconnecting on request (cafe24-disconnect)
-- ---------------------------------------------------------------------------------------------

-- Finds the connection a caller names (by auth_settings id or by mall; p_user_id limits it to
-- that user's rows, null for the app's secret key) and disconnects it with p_reason. Of several
-- rows for one mall, the one holding credentials. Returns one row:
--   outcome 'not_found'     nothing the caller may see matches (another user's row included);
--   outcome 'disconnected'  done; removed is the pair to revoke, null when the row held none
--                           (a row already disconnected keeps its original reason).
-- Serialized with connecting the same mall (the same per-mall lock as completing a connection).
create or replace function cafe24_private.disconnect_requested(
  p_auth_settings_id uuid,
  p_mall_id text,
  p_user_id uuid,
  p_reason text
)
returns table (outcome text, auth_settings_id uuid, mall_id text, removed jsonb)
language plpgsql
set search_path = ''
as $$
declare
  v_id uuid;
  v_mall_id text;
  v_row_state text;
  v_status text;
  v_removed jsonb;
begin
  if (p_auth_settings_id is null) = (p_mall_id is null) then
    raise exception 'disconnect_requested: exactly one of an auth_settings id and a mall id is required'
      using errcode = '22023';
  end if;

  for attempt in 1..2 loop
    select c.auth_settings_id, c.mall_id, c.row_state, c.status
    into v_id, v_mall_id, v_row_state, v_status
    from cafe24_private.connections c
    join public.auth_settings s on s.id = c.auth_settings_id
    where (p_auth_settings_id is null or c.auth_settings_id = p_auth_settings_id)
      and (p_mall_id is null or c.mall_id = p_mall_id)
      and (p_user_id is null or s.user_id = p_user_id)
      and jsonb_typeof(s.providers -> 'cafe24') = 'object'
    order by c.row_state = 'ok' desc, c.updated_at desc, c.auth_settings_id
    limit 1;

    if v_id is null then
      return query select 'not_found'::text, null::uuid, null::text, null::jsonb;
      return;
    end if;
    exit when v_mall_id is null or attempt = 2;
    -- Take the mall's lock, then look again: a connection completed meanwhile may have moved it.
    perform pg_advisory_xact_lock(hashtextextended('cafe24_private.mall:' || v_mall_id, 0));
  end loop;

  if v_row_state <> 'ok' and v_status = 'disconnected' then
    return query select 'disconnected'::text, v_id, v_mall_id, null::jsonb;
    return;
  end if;
  v_removed := cafe24_private.disconnect_connection(v_id, p_reason);
  return query select 'disconnected'::text, v_id, v_mall_id, v_removed;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges: service_role reads the events, their delivery state and the verifications; only
-- the functions' owner writes and calls.
-- ---------------------------------------------------------------------------------------------

revoke all on table cafe24_private.connection_events from public, anon, authenticated, service_role;
revoke all on table cafe24_private.connection_event_deliveries
  from public, anon, authenticated, service_role;
revoke all on table cafe24_private.mall_verifications from public, anon, authenticated, service_role;
revoke all on sequence cafe24_private.connection_events_id_seq
  from public, anon, authenticated, service_role;
grant select on table cafe24_private.connection_events to service_role;
grant select on table cafe24_private.connection_event_deliveries to service_role;
grant select on table cafe24_private.mall_verifications to service_role;

revoke all on function cafe24_private.connection_event_retention() from public, anon, authenticated;
revoke all on function cafe24_private.refuse_event_rewrite() from public, anon, authenticated;
revoke all on function cafe24_private.record_connection_event() from public, anon, authenticated;
revoke all on function cafe24_private.trim_connection_events(integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.due_event_heads(integer) from public, anon, authenticated;
revoke all on function cafe24_private.claim_event_deliveries(uuid, integer, interval)
  from public, anon, authenticated;
revoke all on function cafe24_private.settle_event_delivery(
  bigint, uuid, boolean, integer, text, timestamptz
) from public, anon, authenticated;
revoke all on function cafe24_private.defer_event_deliveries(timestamptz)
  from public, anon, authenticated;
revoke all on function cafe24_private.invoke_cafe24_events() from public, anon, authenticated;
revoke all on function cafe24_private.mall_verification_interval() from public, anon, authenticated;
revoke all on function cafe24_private.claim_mall_verification_pairs(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_mall_verification(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.defer_mall_verification(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_verification_pairs_after_refresh(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_verifications_after_refresh(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.disconnect_connection_if_current(uuid, bigint, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.disconnect_connection_if_current(uuid, text, text)
  from public, anon, authenticated;
revoke all on function cafe24_private.disconnect_requested(uuid, text, uuid, text)
  from public, anon, authenticated;
