-- public.auth_settings: one row per app user (or org) with each provider's settings and tokens
-- in `providers`; Cafe24 lives under `providers.cafe24`.
--
-- The table may already exist (the app that came before this project created it), so it is
-- created only when missing and existing rows are never rewritten here.

create table if not exists public.auth_settings (
  id uuid primary key default gen_random_uuid(),
  org_id uuid,
  user_id uuid,
  providers jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

alter table public.auth_settings add column if not exists created_at timestamptz not null default now();

create index if not exists auth_settings_user_id_idx on public.auth_settings (user_id);

comment on table public.auth_settings is
  'Per-user provider settings and OAuth tokens. providers.cafe24 holds mall_id, refresh_token, access_token, expires_at and settings such as scope, shop_no, board_no.';

-- Tokens are in this table: only the owner may read their row, and nobody writes through the
-- Data API. Writes come from the Edge Functions over SUPABASE_DB_URL.
alter table public.auth_settings enable row level security;

drop policy if exists "Owners read their own settings" on public.auth_settings;
create policy "Owners read their own settings" on public.auth_settings
  for select to authenticated
  using ((select auth.uid()) = user_id);

-- New Supabase projects no longer grant public tables automatically: say exactly who gets what.
revoke all on public.auth_settings from anon, authenticated;
grant select on public.auth_settings to authenticated;
grant all on public.auth_settings to service_role;
