-- Operator tools: cafe24_private.connection_status says 'malformed', 'not_connected' or
-- 'disconnected' in status, as public.cafe24_connections does, instead of the refresh status a
-- row without usable credentials keeps (a malformed row showed 'active').

create or replace view cafe24_private.connection_status as
select
  c.auth_settings_id,
  c.mall_id,
  s.user_id,
  s.org_id,
  c.row_state,
  case
    when c.row_state = 'malformed' then 'malformed'
    when c.status = 'disconnected' then 'disconnected'
    when c.row_state <> 'ok' then 'not_connected'
    else c.status
  end as status,
  c.access_expires_at,
  c.refresh_expires_at,
  c.last_refreshed_at,
  c.last_error_code,
  c.last_error_message,
  c.last_error_at,
  c.consecutive_failures,
  c.next_attempt_at,
  c.lease_expires_at > now() as refreshing_now,
  c.answer_possibly_lost_at,
  c.token_requested_at
from cafe24_private.connections c
join public.auth_settings s on s.id = c.auth_settings_id;
