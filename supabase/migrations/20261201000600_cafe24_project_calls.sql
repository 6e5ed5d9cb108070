-- Calls from the database to the project's own functions (pg_cron → pg_net → an Edge Function),
-- in one place: the Vault read, the check of the project URL, and the POSTs. cafe24-refresh's and
-- cafe24-events' jobs both go through cafe24_private.call_project_function().
--
-- Why the care: every call carries the cron secret, and pg_net follows redirects (libcurl). A
-- 301/302 turns the POST into a GET without body and sends every header, the secret included, to
-- wherever the Location points; pg_net then records the final status and the FIRST response's
-- headers. So the URL is checked before anything is sent (an https origin and nothing else), and
-- the answers to earlier calls are checked for a redirect: once one is seen, nothing more is sent
-- to that URL until it is changed.

-- What is wrong with a project URL, in words for a notice; null when it may be used. Accepted:
-- https://<host>[:port] with at most a trailing slash; http:// only for a loopback address or
-- host.docker.internal (local stacks). Pure, so it is tested case by case.
create or replace function cafe24_private.project_url_problem(p_url text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
  v_parts text[];
  v_scheme text;
  v_authority text;
  v_rest text;
  v_host text;
  v_port text;
begin
  if coalesce(p_url, '') = '' then
    return 'is empty';
  end if;
  if p_url ~ '[[:space:][:cntrl:]]' then
    return 'contains white space or control characters';
  end if;
  v_parts := regexp_match(p_url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)$');
  if v_parts is null then
    return 'is not an absolute URL: it must look like https://<project-ref>.supabase.co';
  end if;
  v_scheme := lower(v_parts[1]);
  v_authority := v_parts[2];
  v_rest := v_parts[3];
  if v_scheme not in ('https', 'http') then
    return format('must start with https:// (it starts with %s://)', v_scheme);
  end if;
  if v_authority like '%@%' then
    return 'must not contain a user name or password';
  end if;
  if v_rest not in ('', '/') then
    return 'must be the project origin only (https://<project-ref>.supabase.co): no path, query or fragment';
  end if;
  -- host[:port], or [IPv6][:port]
  v_parts := regexp_match(v_authority, '^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:([0-9]{1,5}))?$');
  if v_parts is null then
    return 'does not name a valid host';
  end if;
  v_host := lower(v_parts[1]);
  v_port := v_parts[3];
  if v_port is not null and (v_port::integer < 1 or v_port::integer > 65535) then
    return 'has a port outside 1-65535';
  end if;
  if v_host !~ '^\[' and (
    v_host ~ '(^|\.)\.' or v_host ~ '\.$' or v_host ~ '(^-|-\.|\.-|-$)'
  ) then
    return 'does not name a valid host';
  end if;
  if v_scheme = 'http' and not (
    v_host = 'localhost'
    or v_host = 'host.docker.internal'
    or v_host = '[::1]'
    or v_host ~ '^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$'
  ) then
    return 'must use https:// (http:// is accepted only for 127.0.0.1, localhost, [::1] and host.docker.internal)';
  end if;
  return null;
end
$$;

-- The requests sent through call_project_function whose answer has not been looked at yet. Each
-- call looks at the answers pg_net has recorded since (net._http_response, same id) and removes
-- the rows it looked at. The URL is the Vault value the request went to (not a secret); the
-- request itself, with the cron secret, is pg_net's business.
create table if not exists cafe24_private.project_calls (
  request_id bigint primary key,
  function_name text not null,
  project_url text not null,
  sent_at timestamptz not null default now()
);

comment on table cafe24_private.project_calls is
  'Requests to the project''s functions whose pg_net answer has not been checked for a redirect yet (call_project_function).';

-- A project URL that answered with a redirect. While the Vault secret cafe24_project_url still
-- holds it, nothing is sent. Changing the secret to the right origin is the fix; when the target
-- itself was fixed instead, delete the row.
create table if not exists cafe24_private.project_url_refusals (
  project_url text primary key,
  reason text not null,
  -- What pg_net recorded: the final status (after the redirect was followed) and the first
  -- response's Location, when there was one.
  status_code integer,
  location text,
  request_id bigint,
  detected_at timestamptz not null default now()
);

comment on table cafe24_private.project_url_refusals is
  'Project URLs that redirected a call from pg_net: nothing is sent to them any more (delete the row once the target itself is fixed).';

-- The first response's Location header, whatever its case (pg_net keeps header names as the
-- server wrote them).
create or replace function cafe24_private.location_header(p_headers jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
  select h.value
  from jsonb_each_text(case when jsonb_typeof(p_headers) = 'object' then p_headers else '{}' end) h
  where lower(h.key) = 'location'
  limit 1
$$;

-- Sends p_count POSTs of p_body to {project_url}/functions/v1/{p_function}, with the cron secret
-- and `Prefer: respond-async`, and returns their pg_net request ids. Sends nothing, and says why
-- in `refusal` (and in a notice), when:
--   - a Vault secret is missing;
--   - cafe24_project_url is not a plain https origin (project_url_problem);
--   - cafe24_project_url answered an earlier call with a redirect (project_url_refusals).
--
-- Security definer: reading vault.decrypted_secrets takes EXECUTE on
-- vault._crypto_aead_det_decrypt, which Supabase grants to postgres, the role that applies
-- migrations; given to another owner, calls fail with "permission denied for function
-- _crypto_aead_det_decrypt". plpgsql, so that vault and net are looked up when a job runs.
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
  for i in 1..greatest(coalesce(p_count, 0), 0) loop
    request_ids := request_ids || net.http_post(
      url := v_url,
      body := p_body,
      headers := jsonb_build_object(
        'Content-Type', 'application/json',
        'x-cron-secret', v_cron_secret,
        'Prefer', 'respond-async'
      ),
      timeout_milliseconds := 10000
    );
  end loop;
  insert into cafe24_private.project_calls (request_id, function_name, project_url)
  select id, p_function, v_project_url from unnest(request_ids) id;
end
$$;

-- cafe24-events' job: one call when an event can be sent (a due_event_heads row); null when
-- nothing can be sent (then there is no invocation at all) or the call was refused.
create or replace function cafe24_private.invoke_cafe24_events()
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from cafe24_private.due_event_heads(1)) then
    return null;
  end if;
  return (cafe24_private.call_project_function(
    'cafe24-events', jsonb_build_object('trigger', 'cron'), 1)).request_ids[1];
end
$$;

revoke all on table cafe24_private.project_calls from public, anon, authenticated, service_role;
revoke all on table cafe24_private.project_url_refusals
  from public, anon, authenticated, service_role;
grant select on table cafe24_private.project_calls to service_role;
grant select on table cafe24_private.project_url_refusals to service_role;
revoke all on function cafe24_private.project_url_problem(text) from public, anon, authenticated;
revoke all on function cafe24_private.location_header(jsonb) from public, anon, authenticated;
revoke all on function cafe24_private.call_project_function(text, jsonb, integer)
  from public, anon, authenticated, service_role;
revoke all on function cafe24_private.invoke_cafe24_events() from public, anon, authenticated;
