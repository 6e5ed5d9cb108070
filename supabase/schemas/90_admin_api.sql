-- Calling the Cafe24 Admin API for the app (cafe24-api and cafe24Fetch, see
-- supabase/functions/_shared/api/admin_api.ts): each mall's rate limit shared by every process of
-- the app, and the access token Cafe24 rejected.
--
-- Cafe24 meters each mall with a leaky bucket (usually 40 calls, draining 2 a second) that every
-- client of the app spends from; a call beyond it is answered 429 and lengthens the block. Every
-- process takes a slot here before it sends a call, so the processes together stay inside the
-- bucket instead of each guessing.

-- One row per mall: the bucket as the connector models it. UNLOGGED: it is written on every call,
-- and losing it in a crash costs at most a 429 (Cafe24's own bucket is the truth; the next answer's
-- X-Api-Call-Limit sets the level again).
create unlogged table cafe24_private.api_buckets (
  mall_id text primary key,
  -- Calls in the bucket at level_at; it drains at drain_per_s from then on.
  level double precision not null default 0,
  level_at timestamptz not null default now(),
  capacity integer not null,
  drain_per_s double precision not null,
  -- The earliest instant the next call may be sent (spacing of max_per_s calls a second).
  next_at timestamptz not null default '-infinity',
  -- Cafe24 said to wait (a 429's Retry-After or X-Cafe24-*-Remain): no call before then.
  blocked_until timestamptz
);

comment on table cafe24_private.api_buckets is
  'Per-mall Admin API rate limit shared by every process (take_api_slot, note_api_answer). Unlogged: a crash resets it.';

-- Takes one slot from the mall's bucket if a call may be sent now, in one statement: the row is
-- created at the configured capacity on first use and locked for the update, so concurrent
-- callers in any process queue on it and each sees the level the previous one left. A slot needs
-- room for one more call (keeping p_margin calls of the capacity spare for the error between the
-- model and Cafe24's own bucket), no block, and p_max_per_s spacing since the previous slot.
-- Returns granted, the milliseconds to wait before asking again when not granted (the caller
-- sleeps that long instead of polling), and the level after the slot.
create or replace function cafe24_private.take_api_slot(
  p_mall_id text,
  p_capacity integer,
  p_drain_per_s double precision,
  p_max_per_s integer,
  p_margin double precision
)
returns table (granted boolean, wait_ms integer, level double precision)
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
  v_bucket cafe24_private.api_buckets;
  v_level double precision;
  v_wait_s double precision := 0;
begin
  insert into cafe24_private.api_buckets as b (mall_id, capacity, drain_per_s)
  values (p_mall_id, p_capacity, p_drain_per_s)
  on conflict (mall_id) do nothing;
  select * into v_bucket from cafe24_private.api_buckets b where b.mall_id = p_mall_id for update;

  v_level := greatest(0, v_bucket.level
    - extract(epoch from (v_now - v_bucket.level_at)) * v_bucket.drain_per_s);
  if v_bucket.blocked_until > v_now then
    v_wait_s := greatest(v_wait_s, extract(epoch from (v_bucket.blocked_until - v_now)));
  end if;
  if v_bucket.next_at > v_now then
    v_wait_s := greatest(v_wait_s, extract(epoch from (v_bucket.next_at - v_now)));
  end if;
  if v_level + 1 > v_bucket.capacity - p_margin then
    v_wait_s := greatest(v_wait_s,
      (v_level + 1 - (v_bucket.capacity - p_margin)) / greatest(v_bucket.drain_per_s, 0.001));
  end if;
  if v_wait_s > 0 then
    return query select false, greatest(1, ceil(v_wait_s * 1000))::integer, v_level;
    return;
  end if;

  update cafe24_private.api_buckets b
  set level = v_level + 1,
      level_at = v_now,
      next_at = v_now + make_interval(secs => 1.0 / greatest(p_max_per_s, 1)),
      blocked_until = null
  where b.mall_id = p_mall_id;
  return query select true, 0, v_level + 1;
end
$$;

-- What Cafe24's answer said about the mall's bucket, in one statement: X-Api-Call-Limit's
-- used/capacity (the level can only rise to it: calls of other clients count too, and calls of
-- this app still on their way are not in Cafe24's figure yet) and, from a 429 or the
-- X-Cafe24-*-Remain headers, how long no call may go (p_blocked_ms; null when none).
create or replace function cafe24_private.note_api_answer(
  p_mall_id text,
  p_used double precision,
  p_capacity integer,
  p_drain_per_s double precision,
  p_blocked_ms integer
)
returns void
language plpgsql
set search_path = ''
as $$
declare
  v_now timestamptz := clock_timestamp();
begin
  insert into cafe24_private.api_buckets as b (mall_id, level, level_at, capacity, drain_per_s,
    blocked_until)
  values (p_mall_id, coalesce(p_used, 0), v_now, coalesce(p_capacity, 40), p_drain_per_s,
    v_now + make_interval(secs => coalesce(p_blocked_ms, 0) / 1000.0))
  on conflict (mall_id) do update set
    level = greatest(
      greatest(0, b.level - extract(epoch from (v_now - b.level_at)) * b.drain_per_s),
      coalesce(p_used, 0)),
    level_at = v_now,
    capacity = coalesce(p_capacity, b.capacity),
    blocked_until = case when p_blocked_ms is null then b.blocked_until
      else greatest(coalesce(b.blocked_until, v_now),
        v_now + make_interval(secs => p_blocked_ms / 1000.0)) end;
end
$$;

-- An Admin API call was answered 401 with p_rejected, the access token it sent. Compared here,
-- in one locked statement, so that of many callers meeting the same 401 at once only the first
-- makes the connection due for a refresh; the refresh itself is getCafe24AccessToken's (single
-- flight and lease). Returns:
--   changed   the connection holds another token now (refreshed meanwhile): retry with it;
--   marked    the token is marked expired (access_expires_at, due_at = now): the next token
--             request refreshes it;
--   too_young the pair was stored less than 5 minutes ago: a refresh would not help;
--   throttled a rejected token of this mall started a refresh within the last 10 minutes;
--   not_found no such connection.
create or replace function cafe24_private.reject_access_token(
  p_auth_settings_id uuid,
  p_rejected text
)
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_connection cafe24_private.connections;
begin
  select * into v_connection from cafe24_private.connections c
  where c.auth_settings_id = p_auth_settings_id
  for update;
  if not found then
    return 'not_found';
  end if;
  if v_connection.access_token is distinct from p_rejected then
    return 'changed';
  end if;
  if v_connection.last_refreshed_at > now() - interval '5 minutes' then
    return 'too_young';
  end if;
  if exists (
    select 1 from cafe24_private.connections c
    where c.mall_id = v_connection.mall_id
      and c.token_rejected_at > now() - interval '10 minutes'
  ) then
    return 'throttled';
  end if;
  update cafe24_private.connections c
  set token_rejected_at = now(),
      access_expires_at = least(c.access_expires_at, now()),
      due_at = least(c.due_at, now()),
      updated_at = now()
  where c.auth_settings_id = p_auth_settings_id;
  return 'marked';
end
$$;

-- Privileges: only the functions' owner calls them; service_role may read the buckets.
revoke all on table cafe24_private.api_buckets from public, anon, authenticated, service_role;
grant select on table cafe24_private.api_buckets to service_role;
revoke all on function cafe24_private.take_api_slot(
  text, integer, double precision, integer, double precision
) from public, anon, authenticated;
revoke all on function cafe24_private.note_api_answer(
  text, double precision, integer, double precision, integer
) from public, anon, authenticated;
revoke all on function cafe24_private.reject_access_token(uuid, text)
  from public, anon, authenticated;
