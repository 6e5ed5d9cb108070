-- Finding 3 of the resilience review: a forged app notice never rotates a grant. A notice for a
-- mall whose access token is dead leaves the verification pending until the mall's next refresh
-- instead of refreshing it (see supabase/schemas/70_events.sql).

alter table cafe24_private.mall_verifications add column if not exists pending_since timestamptz;

create index if not exists mall_verifications_pending_idx
  on cafe24_private.mall_verifications (pending_since)
  where pending_since is not null;

comment on table cafe24_private.mall_verifications is
  'Last verification of a mall prompted by a Cafe24 app notice (cafe24-webhook): at most one per mall per mall_verification_interval(); pending_since: waiting for the mall''s next refresh.';

-- Starts a verification of p_mall_id if none started within mall_verification_interval(), and
-- returns the connections to verify with their access tokens; nothing when the mall has no
-- connection holding credentials (nothing is recorded for it either, so made-up mall ids leave
-- no rows) or when the last verification is too recent. Atomic: of two notices racing, one
-- gets the rows. A connection whose access token has expired comes back with a null token and
-- the mall's verification is left pending until its next refresh (pending_since): it is never
-- refreshed for a notice.
create or replace function cafe24_private.claim_mall_verification(p_mall_id text)
returns table (auth_settings_id uuid, access_token text)
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
    case when c.access_expires_at <= now() then null
      else s.providers -> 'cafe24' ->> 'access_token' end
  from cafe24_private.connections c
  join public.auth_settings s on s.id = c.auth_settings_id
  where c.mall_id = p_mall_id and c.row_state = 'ok' and c.status <> 'disconnected'
    and jsonb_typeof(s.providers -> 'cafe24' -> 'access_token') = 'string'
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
-- have a connection holding credentials are cleared without a verification.
create or replace function cafe24_private.claim_verifications_after_refresh(
  p_mall_id text default null
)
returns table (mall_id text, auth_settings_id uuid, access_token text)
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
  select c.mall_id, c.auth_settings_id, s.providers -> 'cafe24' ->> 'access_token'
  from claimed
  join cafe24_private.connections c on c.mall_id = claimed.mall_id
  join public.auth_settings s on s.id = c.auth_settings_id
  where c.row_state = 'ok' and c.status <> 'disconnected'
    and jsonb_typeof(s.providers -> 'cafe24' -> 'access_token') = 'string'
  order by c.mall_id, c.auth_settings_id;
end
$$;

revoke all on function cafe24_private.defer_mall_verification(text)
  from public, anon, authenticated;
revoke all on function cafe24_private.claim_verifications_after_refresh(text)
  from public, anon, authenticated;
