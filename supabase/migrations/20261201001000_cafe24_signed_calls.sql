-- The scheduled calls no longer carry CRON_SECRET. pg_net keeps each request, headers included,
-- in net.http_request_queue until its worker sends it, and that table is readable by roles other
-- than this project's (pg_net grants it to PUBLIC; Supabase grants USAGE on net to anon and
-- authenticated). A call is now signed with the secret instead: HMAC-SHA256 over
-- `<timestamp>.<body>` in x-cron-signature, the timestamp in x-cron-timestamp (the functions'
-- check is in _shared/refresh/caller.ts). Someone who reads a queued call can at most send the
-- same request again within five minutes: the same scheduled run, which the leases make harmless.
create extension if not exists pgcrypto with schema extensions;

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
  v_refused cafe24_private.project_url_refusals%rowtype;
  v_url text;
  v_at text;
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
  -- means the URL redirects, and that the secret may already have been sent to the redirect's
  -- target once. Nothing more goes there.
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
  on conflict (project_url) do nothing;

  select * into v_refused from cafe24_private.project_url_refusals f
  where f.project_url = v_project_url;
  if found then
    refusal := format(
      'cafe24_project_url redirected an earlier call (HTTP %s%s), so the cron secret may have reached another address; set the Vault secret to the exact origin the functions answer on (or, once the target is fixed, delete from cafe24_private.project_url_refusals)',
      coalesce(v_refused.status_code::text, 'no status'),
      case when v_refused.location is null then '' else ', Location ' || v_refused.location end);
    raise notice '% not called: %', p_function, refusal;
    return;
  end if;

  v_url := v_project_url || '/functions/v1/' || p_function;
  -- Signed, not carrying the secret: pg_net's queue is readable by other database roles while a
  -- request waits there. The body is signed as pg_net will send it (jsonb as text).
  v_at := floor(extract(epoch from clock_timestamp()))::bigint::text;
  for i in 1..greatest(coalesce(p_count, 0), 0) loop
    request_ids := request_ids || net.http_post(
      url := v_url,
      body := p_body,
      headers := jsonb_build_object(
        'Content-Type', 'application/json',
        'x-cron-timestamp', v_at,
        'x-cron-signature', 'v1=' || encode(
          extensions.hmac(v_at || '.' || v_body, v_cron_secret, 'sha256'), 'hex'),
        'Prefer', 'respond-async'
      ),
      timeout_milliseconds := 10000
    );
  end loop;
  insert into cafe24_private.project_calls (request_id, function_name, project_url)
  select id, p_function, v_project_url from unnest(request_ids) id;
end
$$;
