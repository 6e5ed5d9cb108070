-- The schedule: pg_cron calls cafe24-refresh through pg_net every 5 minutes, and a daily job
-- trims the histories.
--
-- The project URL and the cron secret are read from Vault at each call, never written here:
--   select vault.create_secret('https://<project-ref>.supabase.co', 'cafe24_project_url');
--   select vault.create_secret('<the CRON_SECRET of the functions>', 'cafe24_cron_secret');
-- On Supabase the extensions exist on the platform. A local Postgres gets them, or stand-ins where
-- its installation has none, before migrations run (local/supabase/stand_ins.sql): so each is
-- created here only where it is available.

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

-- Queues one POST to cafe24-refresh and returns pg_net's request id, or null when a Vault
-- secret is missing (then nothing is sent: an unauthenticated call would only be refused).
-- `Prefer: respond-async` makes the function answer 202 at once and finish the run after the
-- response, so pg_net's timeout never cuts a run short. plpgsql, so that vault and net are looked
-- up when the job runs, not when this migration is applied.
--
-- It reads Vault with its owner's rights (security definer): reading vault.decrypted_secrets
-- takes EXECUTE on vault._crypto_aead_det_decrypt as well, which Supabase grants to postgres, the
-- role that applies migrations. Given to another owner, the job fails with "permission denied
-- for function _crypto_aead_det_decrypt". pg_net follows redirects, re-sending every header (the
-- secret too) and turning the POST into a GET without body on a 301/302, so the project URL must
-- be the exact origin the functions answer on.
create or replace function cafe24_private.invoke_cafe24_refresh()
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_project_url text;
  v_cron_secret text;
begin
  select decrypted_secret into v_project_url
  from vault.decrypted_secrets where name = 'cafe24_project_url';
  select decrypted_secret into v_cron_secret
  from vault.decrypted_secrets where name = 'cafe24_cron_secret';

  if coalesce(v_project_url, '') = '' or coalesce(v_cron_secret, '') = '' then
    raise notice 'cafe24-refresh not called: Vault secret % is missing',
      case when coalesce(v_project_url, '') = '' then 'cafe24_project_url' else 'cafe24_cron_secret' end;
    return null;
  end if;

  return net.http_post(
    url := rtrim(v_project_url, '/') || '/functions/v1/cafe24-refresh',
    body := jsonb_build_object('trigger', 'cron'),
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'x-cron-secret', v_cron_secret,
      'Prefer', 'respond-async'
    ),
    timeout_milliseconds := 10000
  );
end
$$;

-- Histories that nothing trims grow forever: pg_cron never deletes cron.job_run_details, and
-- the run history is ours. (pg_net trims its own responses after 6 hours.)
create or replace function cafe24_private.trim_histories(
  p_keep_cron_details interval default interval '7 days',
  p_keep_runs interval default interval '30 days'
)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- A run that never finished (its function was killed) is marked, not left "running".
  update cafe24_private.refresh_runs
  set status = 'abandoned', finished_at = now()
  where status = 'running' and started_at < now() - interval '1 hour';

  delete from cafe24_private.refresh_runs where started_at < now() - p_keep_runs;

  if to_regclass('cron.job_run_details') is not null then
    execute 'delete from cron.job_run_details where end_time < now() - $1' using p_keep_cron_details;
  end if;
end
$$;

revoke all on function cafe24_private.invoke_cafe24_refresh() from public;
revoke all on function cafe24_private.trim_histories(interval, interval) from public;

-- Registering by name updates an existing job instead of adding a second one, so re-applying
-- this migration (or `supabase db reset`) never duplicates the schedule.
do $$
begin
  if exists (select 1 from pg_extension where extname = 'pg_cron') then
    perform cron.schedule('cafe24-refresh', '*/5 * * * *',
      'select cafe24_private.invoke_cafe24_refresh()');
    perform cron.schedule('cafe24-trim-histories', '17 3 * * *',
      'select cafe24_private.trim_histories()');
  end if;
end
$$;
