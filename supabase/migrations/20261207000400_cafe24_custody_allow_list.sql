-- The drop-in view public.auth_settings_without_tokens keeps settings by an allow-list instead of
-- dropping credential-like names: a name cannot tell a credential apart (pwd, passphrase, jwt,
-- bearer, dsn, pat, otp_seed, code, a URL with a password). Cafe24 shows its documented settings;
-- other providers show the keys the operator lists in cafe24_private.view_allowed_keys (empty at
-- first). service_role could select the view but not execute without_credentials, so every select
-- it made failed; it now executes it and sees every row.

-- The keys of other providers' settings that public.auth_settings_without_tokens shows, as the
-- operator lists them (provider, key): empty by default, so another provider shows nothing until
-- someone decides that a key is not a credential. Only service_role and the owner write it. A row
-- cannot name Cafe24's tokens, so a slip here never shows them.
create table cafe24_private.view_allowed_keys (
  provider text not null check (provider <> ''),
  key text not null check (key <> ''),
  created_at timestamptz not null default now(),
  primary key (provider, key),
  check (provider <> 'cafe24' or key not in ('access_token', 'refresh_token'))
);

comment on table cafe24_private.view_allowed_keys is
  'Settings keys (provider, key) that public.auth_settings_without_tokens shows besides Cafe24''s documented ones. Empty by default; written by the operator as service_role.';

-- The documented settings under providers.cafe24 that are not secret: what
-- public.cafe24_connections shows as scalars, expiries included (an expiry says when, not what).
create or replace function cafe24_private.cafe24_setting_keys()
returns text[]
language sql
immutable
set search_path = ''
as $$
  select array['mall_id', 'shop_no', 'board_no', 'scope', 'connected_at', 'expires_at',
    'refresh_token_expires_at']
$$;

-- providers with only the settings known not to be credentials: for Cafe24
-- cafe24_setting_keys(), for every provider the keys in view_allowed_keys. An allow-list, because
-- a name cannot tell a credential apart (pwd, passphrase, jwt, bearer, dsn, pat, otp_seed, code).
-- Only scalar values pass: a nested object or array of an allowed key may hold a credential
-- (oauth.refresh_token, tokens[].access_token), and so does a string that is a URL with a user
-- or password in it (https://user:pass@host). Providers that are not objects are dropped (a bare
-- "slack_token": "xoxb-…"). Cafe24's shops, scopes and warning are in public.cafe24_connections.
-- security definer: the view calls this as the querying role (authenticated, service_role), and
-- only the owner reads view_allowed_keys; it only removes keys from the JSON it is given.
create or replace function cafe24_private.without_credentials(p_providers jsonb)
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  select case
    when jsonb_typeof(p_providers) is distinct from 'object' then '{}'::jsonb
    else coalesce((
      select jsonb_object_agg(
        provider.key,
        coalesce((
          select jsonb_object_agg(field.key, field.value)
          from jsonb_each(provider.value) field
          where jsonb_typeof(field.value) in ('string', 'number', 'boolean', 'null')
            and not (
              jsonb_typeof(field.value) = 'string'
              and (field.value #>> '{}') ~* '^[a-z][a-z0-9+.-]*:/*[^/?#[:space:]]*@'
            )
            and (
              (provider.key = 'cafe24' and field.key = any (cafe24_private.cafe24_setting_keys()))
              or exists (
                select 1 from cafe24_private.view_allowed_keys a
                where a.provider = provider.key and a.key = field.key
              )
            )
        ), '{}'::jsonb)
      )
      from jsonb_each(p_providers) provider
      where jsonb_typeof(provider.value) = 'object'
    ), '{}'::jsonb)
  end
$$;

-- Drop-in for code that selected auth_settings: the same columns, providers without credentials
-- (without_credentials). A browser (authenticated) sees its own rows; service_role, which reads
-- auth_settings whole anyway, sees every row, so server code can use the drop-in too.
create or replace view public.auth_settings_without_tokens
with (security_barrier = true)
as
select
  s.id,
  s.org_id,
  s.user_id,
  cafe24_private.without_credentials(s.providers) as providers,
  s.created_at,
  s.updated_at
from public.auth_settings s
where s.user_id = (select auth.uid()) or current_user = 'service_role';

comment on view public.auth_settings_without_tokens is
  'public.auth_settings without credentials: the signed-in user''s rows (every row for service_role); providers keeps only allowed scalar settings (cafe24_private.without_credentials).';

revoke all on table cafe24_private.view_allowed_keys from public, anon, authenticated;
grant select, insert, update, delete on table cafe24_private.view_allowed_keys to service_role;
revoke all on function cafe24_private.cafe24_setting_keys() from public, anon, authenticated;
grant execute on function cafe24_private.without_credentials(jsonb) to service_role;
