-- =================================================================================================
-- STAND-INS — NOT A MIGRATION. Never copy this into supabase/migrations.
--
-- Turns a plain PostgreSQL 15 (with pg_cron preloaded) into something shaped like a Supabase
-- database, so that our migrations and tests run without Docker: the roles, the `auth` and
-- `extensions` schemas, Supabase Auth's helpers, and Vault and pg_net — the real extensions where
-- this server ships them (see "Vault and pg_net" below), stand-ins with their public signatures
-- where it does not. Only the SIGNATURES (names, argument names, types, defaults, return types),
-- table shapes and the grants that matter are copied from the real sources; the bodies are our own
-- simplified stand-ins:
--   * vault: NO ENCRYPTION. `vault.secrets.secret` holds the value base64-encoded and
--     `vault.decrypted_secrets` decodes it, through a decrypt function with the real one's grants.
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
--   supabase/vault     v0.3.1: sql/supabase_vault--0.3.0.sql (no SQL change in 0.3.1)
--   supabase/pg_net    v0.20.x: sql/pg_net.sql (http_get/http_post/http_delete, tables, grants)
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

-- =================================================================================================
-- Vault and pg_net: the real extension wherever this server ships it, else a stand-in. This is
-- the one place that decides (per extension, from pg_available_extensions, which lists what the
-- server's installation holds). A stand-in never creates an object the real extension would own
-- (its schema included: `create extension` refuses a schema it does not own), and the real
-- extension's objects are never touched by a stand-in. local/postgres/cluster.ts preloads both
-- libraries when the installation has them, which their workers and keys need.
--
-- A kept database (npm start reuses its data directory) can meet a different installation than
-- the one that set it up: a stand-in left behind is replaced by the real extension (Vault
-- secrets carried over), and a real extension whose library is gone is replaced by the stand-in
-- (its secrets cannot be decrypted without the library: they are dropped).
-- =================================================================================================

-- ---------------------------------------------------------------------------------------------
-- vault (supabase/vault 0.3.1). STAND-IN: no encryption; `secret` holds the value base64-encoded,
-- so it never equals the plain text, as the real ciphertext never does. The same functions
-- (`_crypto_aead_det_encrypt/decrypt/noncegen`) sit in the same places with the same grants, so a
-- role without EXECUTE on `vault._crypto_aead_det_decrypt` cannot read `vault.decrypted_secrets`
-- here either.
-- ---------------------------------------------------------------------------------------------
do $vault$
declare
  carried jsonb := '[]';
begin
  if exists (select from pg_available_extensions where name = 'supabase_vault') then
    if not exists (select from pg_extension where extname = 'supabase_vault')
      and to_regclass('vault.decrypted_secrets') is not null then
      select coalesce(jsonb_agg(jsonb_build_object(
        'secret', d.decrypted_secret, 'name', d.name, 'description', d.description)), '[]')
      into carried
      from vault.decrypted_secrets d;
      drop schema vault cascade;
    end if;
    create extension if not exists supabase_vault;
    perform vault.create_secret(c ->> 'secret', c ->> 'name', c ->> 'description')
    from jsonb_array_elements(carried) c;
    return;
  end if;

  if exists (select from pg_extension where extname = 'supabase_vault') then
    drop extension supabase_vault cascade;
  end if;

  create schema if not exists vault;

  create table if not exists vault.secrets (
    id uuid primary key default gen_random_uuid(),
    name text,
    description text not null default '',
    secret text not null,
    key_id uuid,
    nonce bytea, -- its default (below) needs the function below
    created_at timestamptz not null default current_timestamp,
    updated_at timestamptz not null default current_timestamp
  );
  comment on table vault.secrets is
    'STAND-IN for Supabase Vault: `secret` is only base64-encoded here (the real one encrypts it).';
  -- The real index (auto-named secrets_name_idx): a second create_secret with one name is 23505.
  create unique index if not exists secrets_name_idx on vault.secrets using btree (name)
    where name is not null;

  -- Stand-ins of the real C functions. Real: XChaCha20-SIV keyed by the server's root key.
  create or replace function vault._crypto_aead_det_encrypt(
    message bytea, additional bytea, key_id bigint, context bytea = 'pgsodium', nonce bytea = null
  )
  returns bytea
  language sql
  immutable
  as $fn$ select message $fn$;

  create or replace function vault._crypto_aead_det_decrypt(
    message bytea, additional bytea, key_id bigint, context bytea = 'pgsodium', nonce bytea = null
  )
  returns bytea
  language sql
  immutable
  as $fn$ select message $fn$;

  create or replace function vault._crypto_aead_det_noncegen()
  returns bytea
  language sql
  as $fn$ select uuid_send(gen_random_uuid()) $fn$;

  alter table vault.secrets alter column nonce set default vault._crypto_aead_det_noncegen();

  -- An earlier stand-in stored the plain text and had no decrypt function: encode what it left.
  if not exists (
    select from pg_views where schemaname = 'vault' and viewname = 'decrypted_secrets'
      and definition like '%_crypto_aead_det_decrypt%'
  ) then
    drop view if exists vault.decrypted_secrets;
    update vault.secrets set secret = encode(convert_to(secret, 'utf8'), 'base64');
  end if;

  -- The real view, column for column.
  create or replace view vault.decrypted_secrets as
  select
    s.id,
    s.name,
    s.description,
    s.secret,
    convert_from(
      vault._crypto_aead_det_decrypt(
        message := decode(s.secret, 'base64'),
        additional := convert_to(s.id::text, 'utf8'),
        key_id := 0,
        context := 'pgsodium'::bytea,
        nonce := s.nonce
      ),
      'utf8'
    ) as decrypted_secret,
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
  as $fn$
  declare
    created vault.secrets;
  begin
    insert into vault.secrets (secret, name, description)
    values (new_secret, new_name, new_description)
    returning * into created;
    -- Stored in its "encrypted" form once the row (and so its id, the associated data) exists.
    update vault.secrets s
    set secret = encode(vault._crypto_aead_det_encrypt(
      message := convert_to(created.secret, 'utf8'),
      additional := convert_to(s.id::text, 'utf8'),
      key_id := 0,
      context := 'pgsodium'::bytea,
      nonce := created.nonce
    ), 'base64')
    where s.id = created.id;
    return created.id;
  end
  $fn$;

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
  as $fn$
  begin
    update vault.secrets s
    set
      secret = case when new_secret is null then s.secret
        else encode(vault._crypto_aead_det_encrypt(
          message := convert_to(new_secret, 'utf8'),
          additional := convert_to(s.id::text, 'utf8'),
          key_id := 0,
          context := 'pgsodium'::bytea,
          nonce := s.nonce
        ), 'base64') end,
      name = coalesce(new_name, s.name),
      description = coalesce(new_description, s.description),
      updated_at = now()
    where s.id = secret_id;
  end
  $fn$;

  -- What the real extension's script revokes.
  revoke all on function
    vault._crypto_aead_det_encrypt(bytea, bytea, bigint, bytea, bytea),
    vault._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea),
    vault._crypto_aead_det_noncegen(),
    vault.create_secret(text, text, text, uuid),
    vault.update_secret(uuid, text, text, text, uuid)
  from public;
  revoke all on vault.secrets, vault.decrypted_secrets from public;
end
$vault$;

-- Grants as Supabase sets them after creating the extension (supabase_vault != 0.2.8), for the
-- real extension and the stand-in alike: postgres and service_role only.
grant usage on schema vault to postgres with grant option;
grant select, delete, truncate, references on vault.secrets, vault.decrypted_secrets
  to postgres with grant option;
grant execute on function vault.create_secret(text, text, text, uuid),
  vault.update_secret(uuid, text, text, text, uuid),
  vault._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea) to postgres with grant option;
grant usage on schema vault to service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to service_role;
grant execute on function vault.create_secret(text, text, text, uuid),
  vault.update_secret(uuid, text, text, text, uuid),
  vault._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea) to service_role;

-- ---------------------------------------------------------------------------------------------
-- net (supabase/pg_net 0.20.x). STAND-IN: the functions only queue; local/supabase/
-- pg_net_deliverer.ts plays the background worker (it too sees committed rows only).
-- ---------------------------------------------------------------------------------------------
do $net$
begin
  if exists (select from pg_available_extensions where name = 'pg_net') then
    if not exists (select from pg_extension where extname = 'pg_net')
      and exists (select from pg_namespace where nspname = 'net') then
      -- A stand-in's schema: pg_net must create `net` itself. Queued requests are dropped with it.
      drop schema net cascade;
    end if;
    create extension if not exists pg_net with schema extensions;
    return;
  end if;

  if exists (select from pg_extension where extname = 'pg_net') then
    drop extension pg_net cascade;
  end if;

  create schema if not exists net;

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

  -- Pending requests. The worker reads from here (and deletes what it takes).
  create unlogged table if not exists net.http_request_queue (
    id bigserial,
    method net.http_method not null,
    url text not null,
    headers jsonb,
    body bytea,
    timeout_milliseconds int not null
  );

  -- Associates a response with a request.
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

  -- Real: C, curl_easy_escape: everything but RFC 3986's unreserved characters is %-encoded.
  create or replace function net._urlencode_string(string varchar)
    returns text
    language sql
    immutable
    strict
  as $fn$
    select coalesce(string_agg(
      case
        when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
          or b in (45, 46, 95, 126)
          then chr(b)
        else '%' || upper(lpad(to_hex(b), 2, '0'))
      end, '' order by i), '')
    from (
      select i, get_byte(convert_to(string, 'UTF8'), i) as b
      from generate_series(0, octet_length(convert_to(string, 'UTF8')) - 1) as i
    ) bytes
  $fn$;

  -- Real: C. Appends already-encoded key=value pairs to the url's query string.
  create or replace function net._encode_url_with_params_array(url text, params_array text[])
    returns text
    language sql
    immutable
  as $fn$
    select case
      when url is null then null
      when coalesce(cardinality(params_array), 0) = 0 then url
      else url
        || case when position('?' in url) = 0 then '?'
                when right(url, 1) in ('?', '&') then ''
                else '&' end
        || array_to_string(params_array, '&')
    end
  $fn$;

  -- Real: C, wakes the worker when the calling transaction commits. Here the deliverer polls.
  create or replace function net.wake()
    returns void
    language sql
  as $fn$ select null::void $fn$;

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
  as $fn$
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
  $fn$;

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
  as $fn$
  declare
    request_id bigint;
    params_array text[];
    content_type text;
  begin
    select header_value into content_type
    from jsonb_each_text(coalesce(headers, '{}'::jsonb)) r(header_name, header_value)
    where lower(header_name) = 'content-type'
    limit 1;

    -- Headers without a content type get the JSON one.
    if content_type is null then
      select headers || '{"Content-Type": "application/json"}'::jsonb into headers;
    end if;

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
  $fn$;

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
  as $fn$
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
  $fn$;

  -- What the real extension's script grants: its schema, tables and sequences to PUBLIC (its
  -- functions keep the default EXECUTE for PUBLIC).
  grant usage on schema net to public;
  grant all on all sequences in schema net to public;
  grant all on all tables in schema net to public;
end
$net$;

-- Supabase's own grant on top (its pg_net event trigger), for the real extension and the
-- stand-in alike. So anon CAN call net.http_post and read net._http_response on Supabase; do not
-- rely on the contrary anywhere. (Since Supabase's 20250220051611_pg_net_perms_fix, http_get and
-- http_post are SECURITY INVOKER with EXECUTE for PUBLIC, as the extension creates them.)
grant usage on schema net to postgres, anon, authenticated, service_role;
