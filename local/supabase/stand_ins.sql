-- =================================================================================================
-- STAND-IN — NOT A MIGRATION. Never copy this into supabase/migrations.
--
-- Turns a plain PostgreSQL 15 (with pg_cron preloaded) into something shaped like a Supabase
-- database, so that our migrations and tests run without Docker: the roles, the `auth`,
-- `extensions`, `vault` and `net` schemas, and the public signatures of Supabase Auth's helpers,
-- Supabase Vault and pg_net. Only the SIGNATURES (names, argument names, types, defaults, return
-- types), table shapes and the grants that matter are copied from the real sources; the bodies are
-- our own simplified stand-ins:
--   * vault: NO ENCRYPTION. `vault.secrets.secret` holds the plain text and
--     `vault.decrypted_secrets.decrypted_secret` is a plain copy of it.
--   * net: the functions only queue rows; nothing here sends HTTP. local/supabase/pg_net_deliverer.ts
--     plays pg_net's background worker (it, too, only sees committed rows).
--   * auth: a small `auth.users` (GoTrue owns the real one); no GoTrue, no PostgREST.
--
-- Sources of the mirrored definitions (public repositories):
--   supabase/postgres  migrations/db/init-scripts/00000000000000-initial-schema.sql     (roles)
--                      migrations/db/init-scripts/00000000000001-auth-schema.sql        (auth.users)
--                      migrations/db/init-scripts/00000000000003-post-setup.sql         (pg_net grants)
--                      migrations/db/migrations/20250220051611_pg_net_perms_fix.sql     (pg_net grants)
--                      migrations/db/migrations/20230529180330_alter_api_roles_for_inherit.sql
--                      migrations/db/migrations/20221207154255_create_pgsodium_and_vault.sql
--                        (later versions: the vault grants, supabase_vault != 0.2.8 branch)
--   supabase/auth      migrations/20240624145325_recreate_auth_functions.up.sql (uid/role/jwt)
--   supabase/vault     sql/supabase_vault--0.3.0.sql, sql/supabase_vault--0.2.8--0.3.0.sql
--   supabase/pg_net    sql/pg_net.sql (0.19.x: http_get/http_post/http_delete, tables, grants),
--                      sql/pg_net--0.18.0--0.19.0.sql (timeout default 5000, net.wake())
--
-- Idempotent: safe to run any number of times (CREATE … IF NOT EXISTS / OR REPLACE, guarded DO
-- blocks). Run it as a superuser, with the simple query protocol (several statements).
-- =================================================================================================

-- ---------------------------------------------------------------------------------------------
-- Roles (supabase/postgres initial schema; API roles INHERIT since 20230529180330)
-- ---------------------------------------------------------------------------------------------
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$$;

alter role anon inherit;
alter role authenticated inherit;
alter role service_role inherit bypassrls;
alter role authenticator login noinherit;

grant anon to authenticator;
grant authenticated to authenticator;
grant service_role to authenticator;

-- Supabase sets short statement timeouts for the API roles.
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

-- ---------------------------------------------------------------------------------------------
-- Schemas and base grants
-- ---------------------------------------------------------------------------------------------
create schema if not exists extensions;
create schema if not exists auth;
create schema if not exists vault;
create schema if not exists net;

grant usage on schema public to postgres, anon, authenticated, service_role;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
-- Deliberately NO `alter default privileges in schema public grant … to anon, authenticated,
-- service_role`: Supabase projects created from 2026-05-30 on no longer auto-grant new public
-- tables/functions to the API roles, so migrations must GRANT explicitly, and tests here see the
-- same denials production would.

-- The extensions every Supabase project has in `extensions`, where this server ships them.
do $$
begin
  if exists (select from pg_available_extensions where name = 'pgcrypto') then
    create extension if not exists pgcrypto with schema extensions;
  end if;
  if exists (select from pg_available_extensions where name = 'uuid-ossp') then
    create extension if not exists "uuid-ossp" with schema extensions;
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- auth (Supabase Auth / GoTrue). Functions: supabase/auth 20240624145325_recreate_auth_functions.
-- ---------------------------------------------------------------------------------------------
grant usage on schema auth to anon, authenticated, service_role;

-- A subset of GoTrue's auth.users; real column names and types. Stand-in conveniences (not real):
-- defaults on `id` and `created_at`/`updated_at` (GoTrue sets them itself).
create table if not exists auth.users (
  instance_id uuid null,
  id uuid not null default gen_random_uuid(),
  aud varchar(255) null,
  "role" varchar(255) null,
  email varchar(255) null,
  encrypted_password varchar(255) null,
  email_confirmed_at timestamptz null,
  invited_at timestamptz null,
  last_sign_in_at timestamptz null,
  raw_app_meta_data jsonb null,
  raw_user_meta_data jsonb null,
  is_super_admin bool null,
  created_at timestamptz null default now(),
  updated_at timestamptz null default now(),
  phone text null default null,
  phone_confirmed_at timestamptz null,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  banned_until timestamptz null,
  is_sso_user boolean not null default false,
  deleted_at timestamptz null,
  is_anonymous boolean not null default false,
  constraint users_pkey primary key (id),
  constraint users_phone_key unique (phone)
);
create unique index if not exists users_email_partial_key
  on auth.users (email) where (is_sso_user = false);
comment on table auth.users is
  'STAND-IN for Supabase Auth: stores user login data within a secure schema.';

create or replace function auth.uid()
  returns uuid
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$func$ language sql stable;

create or replace function auth.role()
  returns text
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$func$ language sql stable;

create or replace function auth.email()
  returns text
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$func$ language sql stable;

create or replace function auth.jwt()
  returns jsonb
  set search_path to ''
as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$func$ language sql stable;

-- ---------------------------------------------------------------------------------------------
-- vault (supabase/vault 0.3.x). STAND-IN: no encryption at all.
-- ---------------------------------------------------------------------------------------------
create table if not exists vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  -- real default: vault._crypto_aead_det_noncegen(); unused here
  nonce bytea default uuid_send(gen_random_uuid()),
  created_at timestamptz not null default current_timestamp,
  updated_at timestamptz not null default current_timestamp
);
comment on table vault.secrets is
  'STAND-IN for Supabase Vault: `secret` is stored in PLAIN TEXT here (the real one encrypts it).';

-- Same index as the real `CREATE UNIQUE INDEX ON vault.secrets USING btree (name) WHERE name IS
-- NOT NULL` (auto-named secrets_name_idx): a second create_secret with one name raises 23505.
create unique index if not exists secrets_name_idx on vault.secrets using btree (name)
  where name is not null;

create or replace view vault.decrypted_secrets as
select
  s.id,
  s.name,
  s.description,
  s.secret,
  s.secret as decrypted_secret, -- STAND-IN: a plain copy, nothing is decrypted
  s.key_id,
  s.nonce,
  s.created_at,
  s.updated_at
from vault.secrets s;

create or replace function vault.create_secret(
  new_secret text,
  new_name text = null,
  new_description text = '',
  -- unused
  new_key_id uuid = null
)
returns uuid
security definer
language plpgsql
set search_path = ''
as $$
declare
  rec record;
begin
  insert into vault.secrets (secret, name, description)
  values (new_secret, new_name, new_description)
  returning * into rec;
  return rec.id;
end
$$;

create or replace function vault.update_secret(
  secret_id uuid,
  new_secret text = null,
  new_name text = null,
  new_description text = null,
  -- unused
  new_key_id uuid = null
)
returns void
security definer
language plpgsql
set search_path = ''
as $$
begin
  update vault.secrets s
  set
    secret = coalesce(new_secret, s.secret),
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    updated_at = now()
  where s.id = secret_id;
end
$$;

-- Grants as Supabase sets them (supabase_vault != 0.2.8): postgres and service_role only.
revoke all on function vault.create_secret(text, text, text, uuid) from public;
revoke all on function vault.update_secret(uuid, text, text, text, uuid) from public;
revoke all on vault.secrets, vault.decrypted_secrets from public;
grant usage on schema vault to postgres with grant option;
grant select, delete, truncate, references on vault.secrets, vault.decrypted_secrets
  to postgres with grant option;
grant execute on function vault.create_secret(text, text, text, uuid),
  vault.update_secret(uuid, text, text, text, uuid) to postgres with grant option;
grant usage on schema vault to service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to service_role;
grant execute on function vault.create_secret(text, text, text, uuid),
  vault.update_secret(uuid, text, text, text, uuid) to service_role;

-- ---------------------------------------------------------------------------------------------
-- net (supabase/pg_net 0.19.x). STAND-IN: queues only; local/supabase/pg_net_deliverer.ts delivers.
-- ---------------------------------------------------------------------------------------------
do $$
begin
  if not exists (
    select from pg_type t join pg_namespace n on n.oid = t.typnamespace
    where n.nspname = 'net' and t.typname = 'http_method'
  ) then
    create domain net.http_method as text
    check (
      value ilike 'get'
      or value ilike 'post'
      or value ilike 'delete'
    );
  end if;
end
$$;

-- Store pending requests. The background worker reads from here (and deletes what it takes).
create unlogged table if not exists net.http_request_queue (
  id bigserial,
  method net.http_method not null,
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds int not null
);

-- Associates a response with a request
create unlogged table if not exists net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out bool,
  error_msg text,
  created timestamptz not null default now()
);
create index if not exists _http_response_created_idx on net._http_response (created);

-- url encode a string (real: C, curl_easy_escape: everything but RFC 3986 unreserved characters)
create or replace function net._urlencode_string(string varchar)
  returns text
  language sql
  immutable
  strict
as $$
  select coalesce(string_agg(
    case
      when b between 48 and 57 or b between 65 and 90 or b between 97 and 122 or b in (45, 46, 95, 126)
        then chr(b)
      else '%' || upper(lpad(to_hex(b), 2, '0'))
    end, '' order by i), '')
  from (
    select i, get_byte(convert_to(string, 'UTF8'), i) as b
    from generate_series(0, octet_length(convert_to(string, 'UTF8')) - 1) as i
  ) bytes
$$;

-- Append already-encoded key=value pairs to the url's query string (real: C).
create or replace function net._encode_url_with_params_array(url text, params_array text[])
  returns text
  language sql
  immutable
as $$
  select case
    when url is null then null
    when coalesce(cardinality(params_array), 0) = 0 then url
    else url
      || case when position('?' in url) = 0 then '?'
              when right(url, 1) in ('?', '&') then ''
              else '&' end
      || array_to_string(params_array, '&')
  end
$$;

-- Real: C, wakes the background worker. STAND-IN: no-op (the deliverer polls).
create or replace function net.wake()
  returns void
  language sql
as $$ select null::void $$;

-- Interface to make an async request
create or replace function net.http_get(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    insert into net.http_request_queue(method, url, headers, timeout_milliseconds)
    values (
        'GET',
        net._encode_url_with_params_array(url, params_array),
        headers,
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Interface to make an async request
create or replace function net.http_post(
    -- url for the request
    url text,
    -- body of the POST request
    body jsonb default '{}'::jsonb,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
    content_type text;
begin
    -- Extract the content_type from headers
    select header_value into content_type
    from jsonb_each_text(coalesce(headers, '{}'::jsonb)) r(header_name, header_value)
    where lower(header_name) = 'content-type'
    limit 1;

    -- If the user provided new headers and omitted the content type, add it back in automatically
    if content_type is null then
        select headers || '{"Content-Type": "application/json"}'::jsonb into headers;
    end if;

    -- Confirm that the content-type is set as "application/json"
    if content_type <> 'application/json' then
        raise exception 'Content-Type header must be "application/json"';
    end if;

    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values (
        'POST',
        net._encode_url_with_params_array(url, params_array),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Interface to make an async request
create or replace function net.http_delete(
    -- url for the request
    url text,
    -- key/value pairs to be url encoded and appended to the `url`
    params jsonb default '{}'::jsonb,
    -- key/values to be included in request headers
    headers jsonb default '{}'::jsonb,
    -- the maximum number of milliseconds the request may take before being cancelled
    timeout_milliseconds int default 5000,
    -- optional body of the request
    body jsonb default null
)
    -- request_id reference
    returns bigint
    language plpgsql
as $$
declare
    request_id bigint;
    params_array text[];
begin
    select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
    into params_array
    from jsonb_each_text(params);

    insert into net.http_request_queue(method, url, headers, body, timeout_milliseconds)
    values (
        'DELETE',
        net._encode_url_with_params_array(url, params_array),
        headers,
        convert_to(body::text, 'UTF8'),
        timeout_milliseconds
    )
    returning id
    into request_id;

    perform net.wake();

    return request_id;
end
$$;

-- Grants as on Supabase today. NOTE: the real pg_net grants its schema, tables and sequences to
-- PUBLIC, Supabase's issue_pg_net_access event trigger grants USAGE on schema net to anon,
-- authenticated and service_role, and since 20250220051611_pg_net_perms_fix http_get/http_post
-- are SECURITY INVOKER with EXECUTE for PUBLIC. So anon CAN call net.http_post and read
-- net._http_response on Supabase; do not rely on the contrary anywhere.
grant usage on schema net to public;
grant usage on schema net to postgres, anon, authenticated, service_role;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;
grant all on function net.http_get(text, jsonb, jsonb, integer) to public;
grant all on function net.http_post(text, jsonb, jsonb, jsonb, integer) to public;
