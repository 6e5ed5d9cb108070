-- The current state of every SQL object this project creates, one file per concern, applied in
-- the order of their names. What runs on a database is supabase/migrations (the migrations
-- restate each changed object whole); these files are where each object is read, and the schema
-- equivalence test (tests/integration/schema_equivalence_test.ts) proves that both build the
-- same schema. Data (seed rows) and pg_cron jobs are not here: the migrations write them.
--
-- This file: the extensions the project uses, and the schema that holds everything else.

-- pg_cron runs the schedule, pg_net sends its HTTP calls and Vault keeps the project URL and the
-- cron secret. On Supabase the extensions exist on the platform. A local Postgres gets them, or
-- stand-ins where its installation has none, before the schema is applied
-- (local/supabase/stand_ins.sql): so each is created here only where it is available.
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_cron') then
    create extension if not exists pg_cron with schema pg_catalog;
  else
    raise notice 'pg_cron is not available here: cafe24-refresh will not be scheduled';
  end if;
  if exists (select 1 from pg_available_extensions where name = 'pg_net') then
    -- pg_net creates the schema `net` itself and refuses one it does not own, with a message
    -- that does not say what to do.
    if not exists (select 1 from pg_extension where extname = 'pg_net')
      and exists (select 1 from pg_namespace where nspname = 'net') then
      raise exception 'schema "net" exists but does not belong to pg_net, which must create it'
        using hint = 'It holds a stand-in or a copy of an older pg_net: drop it '
          || '(drop schema net cascade) and apply the migrations again.';
    end if;
    create extension if not exists pg_net with schema extensions;
  end if;
  if exists (select 1 from pg_available_extensions where name = 'supabase_vault') then
    create extension if not exists supabase_vault;
  end if;
end
$$;

-- HMAC-SHA256 for the signed calls from pg_cron to the functions (call_project_function).
create extension if not exists pgcrypto with schema extensions;

-- Everything of this project but the table the app shares (public.auth_settings) and the views
-- the browser reads lives in cafe24_private, a schema the Data API does not expose: the Edge
-- Functions reach it over SUPABASE_DB_URL, the app's server code reads it as service_role.
create schema cafe24_private;
revoke all on schema cafe24_private from public;
revoke all on schema cafe24_private from anon, authenticated;
grant usage on schema cafe24_private to service_role;
