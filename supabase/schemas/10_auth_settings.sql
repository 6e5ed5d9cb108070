-- public.auth_settings: one row per app user (or org) with each provider's settings (and other
-- providers' tokens) in `providers`; Cafe24's settings live under `providers.cafe24`, its tokens
-- in cafe24_private.connections (20_connections.sql), where a trigger moves any written here. The app may have created the table
-- before this project: the migrations then keep it and its rows as they are.

create table public.auth_settings (
  id uuid primary key default gen_random_uuid(),
  org_id uuid,
  user_id uuid,
  providers jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create index auth_settings_user_id_idx on public.auth_settings (user_id);

comment on table public.auth_settings is
  'Per-user provider settings. providers.cafe24 holds what identifies the Cafe24 connection (mall_id, shop_no, board_no, scope, connected_at); its tokens and their expiries live in cafe24_private.connections.';

-- Tokens are in this table, so no browser role reads or writes it: not even the owner's own row
-- (one XSS or stolen session would otherwise hand out the mall's Admin API). RLS is on with no
-- policy for anon/authenticated, as a second lock behind the missing grants. The browser reads
-- connection status through public.cafe24_connections and token-free settings through
-- public.auth_settings_without_tokens (both in 60_connect_and_custody.sql). The Edge Functions
-- write over SUPABASE_DB_URL; the app's server code reads with the service role.
alter table public.auth_settings enable row level security;

-- Older projects grant every public table to anon and authenticated automatically, and new ones
-- grant nothing: say exactly who gets what.
revoke all on public.auth_settings from anon, authenticated;
grant all on public.auth_settings to service_role;
