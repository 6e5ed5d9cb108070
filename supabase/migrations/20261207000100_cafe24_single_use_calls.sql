-- Findings 1 and 4 of the resilience review.
--
-- 1. A redirect recorded in pg_net's answers no longer stops the calls to the project's functions:
--    pg_net lets every role write net._http_response, so such a row could switch the schedule
--    off while cron.job_run_details said succeeded. The redirect is recorded and raised as a
--    warning; the calls go on.
-- 4. A scheduled call's signature is single-use and bound to its function: HMAC-SHA256 over
--    `<function>.<timestamp>.<nonce>.<body>` with a random nonce per call in x-cron-nonce. The
--    functions record each nonce they take in cafe24_private.cron_nonces and refuse one seen
--    before; the daily trim deletes the old ones.
--
-- The functions check the new signature only: apply this migration (supabase db push) and
-- deploy the functions (supabase functions deploy) back to back.

create table if not exists cafe24_private.cron_nonces (
  nonce text primary key,
  used_at timestamptz not null default now()
);

comment on table cafe24_private.cron_nonces is
  'Nonces of the scheduled (signed) calls the functions have taken: each signature is taken once.';

revoke all on table cafe24_private.cron_nonces from public, anon, authenticated, service_role;

comment on table cafe24_private.project_url_refusals is
  'Project URLs for which pg_net recorded a redirected call (call_project_function): a warning only, calls go on; delete the row once the URL is fixed.';

create or replace function cafe24_private.call_project_function(
  p_function text,
  p_body jsonb,
  p_count integer default 1,
  out request_ids bigint[],
  out refusal text
)
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_project_url text;
  v_cron_secret text;
  v_problem text;
  v_redirect record;
  v_url text;
  v_at text;
  v_nonce text;
  v_body text := p_body::text;
begin
  request_ids := '{}';
  if p_function is null or p_function !~ '^[a-z0-9][a-z0-9-]{0,62}$' then
    raise exception 'call_project_function: % is not a function name', quote_nullable(p_function)
      using errcode = '22023';
  end if;

  select decrypted_secret into v_project_url
  from vault.decrypted_secrets where name = 'cafe24_project_url';
  select decrypted_secret into v_cron_secret
  from vault.decrypted_secrets where name = 'cafe24_cron_secret';

  if coalesce(v_project_url, '') = '' or coalesce(v_cron_secret, '') = '' then
    refusal := format('Vault secret %s is missing',
      case when coalesce(v_project_url, '') = '' then 'cafe24_project_url' else 'cafe24_cron_secret' end);
    raise notice '% not called: %', p_function, refusal;
    return;
  end if;

  v_problem := cafe24_private.project_url_problem(v_project_url);
  if v_problem is not null then
    refusal := 'Vault secret cafe24_project_url ' || v_problem;
    raise notice '% not called: %', p_function, refusal;
    return;
  end if;
  v_project_url := rtrim(v_project_url, '/');

  -- The answers to earlier calls: a Location in the first response's headers, or a 3xx status,
  -- says the URL redirects, so a signature may have reached the redirect's target. Recorded and
  -- warned about once per URL; the calls go on (any role can write these rows).
  for v_redirect in
    with answered as (
      delete from cafe24_private.project_calls p
      using net._http_response r
      where r.id = p.request_id
      returning p.request_id, p.project_url, r.status_code,
        cafe24_private.location_header(r.headers) as location
    )
    insert into cafe24_private.project_url_refusals as f
      (project_url, reason, status_code, location, request_id)
    select distinct on (a.project_url) a.project_url, 'redirected', a.status_code,
      left(a.location, 500), a.request_id
    from answered a
    where a.location is not null or a.status_code between 300 and 399
    order by a.project_url, a.request_id
    on conflict (project_url) do nothing
    returning f.project_url, f.status_code, f.location
  loop
    raise warning 'pg_net recorded a redirect for a call to % (HTTP %), so a signature may have reached another address; check the Vault secret cafe24_project_url (cafe24_private.project_url_refusals)',
      p_function,
      coalesce(v_redirect.status_code::text, 'no status')
        || case when v_redirect.location is null then '' else ', Location ' || v_redirect.location end;
  end loop;

  v_url := v_project_url || '/functions/v1/' || p_function;
  -- Signed, not carrying the secret: pg_net's queue is readable by other database roles while a
  -- request waits there. The body is signed as pg_net will send it (jsonb as text); the calls of
  -- one tick share body and timestamp, so each nonce is what makes its signature one of a kind.
  v_at := floor(extract(epoch from clock_timestamp()))::bigint::text;
  for i in 1..greatest(coalesce(p_count, 0), 0) loop
    v_nonce := gen_random_uuid()::text;
    request_ids := request_ids || net.http_post(
      url := v_url,
      body := p_body,
      headers := jsonb_build_object(
        'Content-Type', 'application/json',
        'x-cron-timestamp', v_at,
        'x-cron-nonce', v_nonce,
        'x-cron-signature', 'v1=' || encode(
          extensions.hmac(p_function || '.' || v_at || '.' || v_nonce || '.' || v_body,
            v_cron_secret, 'sha256'), 'hex'),
        'Prefer', 'respond-async'
      ),
      timeout_milliseconds := 10000
    );
  end loop;
  insert into cafe24_private.project_calls (request_id, function_name, project_url)
  select id, p_function, v_project_url from unnest(request_ids) id;
end
$$;

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
  delete from cafe24_private.refresh_ticks where ticked_at < now() - p_keep_cron_details;
  delete from cafe24_private.project_calls where sent_at < now() - interval '1 day';
  delete from cafe24_private.cron_nonces where used_at < now() - interval '1 hour';

  if to_regclass('cron.job_run_details') is not null then
    execute 'delete from cron.job_run_details where end_time < now() - $1' using p_keep_cron_details;
  end if;
end
$$;
