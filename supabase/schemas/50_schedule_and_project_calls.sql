-- The schedule: pg_cron calls the project's own functions through pg_net. Each tick of the
-- cafe24-refresh job counts what is due before the next tick and starts as many cafe24-refresh
-- invocations as that takes (each refreshing at most per_invocation_cap connections, at most
-- max_parallel_invocations at once). The invocations share the lease queue
-- (claim_due_connections, FOR UPDATE SKIP LOCKED), so they never refresh one connection twice.
-- With spare capacity a tick also refreshes a bounded number of connections a little early, so
-- that a bunch of malls connected together spreads out over the refresh cycle instead of coming
-- due together for ever; new connections start with a jittered first due time for the same
-- reason. A daily job trims the histories.
--
--   malls kept fresh ≈ max_parallel_invocations × per_invocation_cap × (refresh interval / tick)
--   15 × 40 × (90 min / 20 s) = 162,000 under the eager policy with Supabase's pg_cron (1.5 and
--   later: 20-second ticks); 15 × 40 × (90 min / 1 min) = 54,000 where pg_cron only does minutes
--
-- Everything an operator sets is in one row (refresh_schedule_settings), changed with one call
-- (set_refresh_schedule); every tick is recorded (refresh_ticks) with what it counted, what it
-- started and why. The jobs themselves (cron.schedule) and the settings row are data: the
-- migrations write them.
--
-- The project URL and the cron secret are read from Vault at each call, never stored here:
--   select vault.create_secret('https://<project-ref>.supabase.co', 'cafe24_project_url');
--   select vault.create_secret('<the CRON_SECRET of the functions>', 'cafe24_cron_secret');

-- ---------------------------------------------------------------------------------------------
-- Calls to the project's functions (pg_cron → pg_net → an Edge Function)
-- ---------------------------------------------------------------------------------------------
--
-- In one place: the Vault read, the check of the project URL, the signature and the POSTs.
-- cafe24-refresh's and cafe24-events' jobs both go through call_project_function().
--
-- Why the care: pg_net keeps each request, headers included, in net.http_request_queue until its
-- worker sends it, and that table is readable by roles other than this project's (pg_net grants
-- it to PUBLIC; Supabase grants USAGE on net to anon and authenticated). So a call carries a
-- signature made with the cron secret, never the secret: HMAC-SHA256 over
-- `<function>.<timestamp>.<nonce>.<body>` in x-cron-signature, the timestamp in x-cron-timestamp
-- and a random nonce, new for every call, in x-cron-nonce (the functions' check is identifyCaller
-- in _shared/platform/caller.ts). The function takes each nonce once (cafe24_private.cron_nonces)
-- and only a signature made for itself, and answers every signed call 202 at once: someone who
-- reads a queued call can send it at most before pg_net does, once, to the function it was meant
-- for, and learns nothing from the answer. And pg_net follows redirects (libcurl): a 301/302
-- turns the POST into a GET without body and sends every header to wherever the Location points;
-- pg_net then records the final status and the FIRST response's headers. So the URL is checked
-- before anything is sent (an https origin and nothing else), and the answers to earlier calls
-- are looked at for a redirect, which is recorded and raised as a warning. Only a warning: pg_net
-- lets every role write net._http_response, so whatever is read there may be forged, and nothing
-- another role can write may stop the schedule.

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
-- request itself is pg_net's business.
create table cafe24_private.project_calls (
  request_id bigint primary key,
  function_name text not null,
  project_url text not null,
  sent_at timestamptz not null default now()
);

comment on table cafe24_private.project_calls is
  'Requests to the project''s functions whose pg_net answer has not been checked for a redirect yet (call_project_function).';

-- A project URL whose call pg_net recorded a redirect for: what an operator looks at (the
-- signatures of the calls sent there may have reached another address). Calls go on all the same
-- (what pg_net recorded may be forged, see above). Changing the secret cafe24_project_url to the
-- right origin is the fix; delete the row once it is done.
create table cafe24_private.project_url_refusals (
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
  'Project URLs for which pg_net recorded a redirected call (call_project_function): a warning only, calls go on; delete the row once the URL is fixed.';

-- The nonces of the signed calls the functions have taken (identifyCaller in
-- _shared/platform/caller.ts inserts each, on conflict do nothing): a nonce already here is a
-- replay. trim_histories deletes those whose signature can no longer be fresh.
create table cafe24_private.cron_nonces (
  nonce text primary key,
  used_at timestamptz not null default now()
);

comment on table cafe24_private.cron_nonces is
  'Nonces of the scheduled (signed) calls the functions have taken: each signature is taken once.';

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

-- Sends p_count POSTs of p_body to {project_url}/functions/v1/{p_function}, each signed with the
-- cron secret over the function's name, the timestamp, its own nonce and the body, with
-- `Prefer: respond-async` (the function answers 202 at once and finishes after the response, so
-- pg_net's timeout never cuts a run short), and returns their pg_net request ids. The body is
-- signed as pg_net sends it (jsonb as text). Sends nothing, and says why in `refusal` (and in a
-- notice), when:
--   - a Vault secret is missing;
--   - cafe24_project_url is not a plain https origin (project_url_problem).
-- Both are the operator's to set; nothing another role can write refuses a call. A redirect seen
-- in pg_net's answers is recorded (project_url_refusals) and raised as a warning, and the calls
-- are sent. Errors are not caught: when pg_net cannot take a request, the job fails and
-- cron.job_run_details says why.
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

-- ---------------------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------------------

-- One row (id = true). Its defaults are the values below; the migrations write the row, with the
-- tick this database's pg_cron takes, and keep what an operator set when they are applied again.
create table cafe24_private.refresh_schedule_settings (
  id boolean primary key default true check (id),
  -- Connections one invocation refreshes at most (sent as max_connections; the function's own
  -- CAFE24_MAX_CONNECTIONS_PER_RUN bounds it too). Small enough that an invocation's CPU stays
  -- under the run's 150 ms budget, and so under the hosted 200 ms, at the 2.5-3 ms a refresh
  -- costs (bench/SCALE.md measures it): the budget then rarely has to stop a run.
  per_invocation_cap integer not null default 40 check (per_invocation_cap between 1 and 1000),
  -- Invocations one tick starts at most. Each opens CAFE24_REFRESH_POOL_SIZE database
  -- connections, so this × the pool size is what the refresher may hold at once (15 × 1: a
  -- quarter of the smallest compute size's 60 direct connections, 7.5 % of its 200 pooler
  -- clients).
  max_parallel_invocations integer not null default 15
    check (max_parallel_invocations between 1 and 200),
  -- Seconds between ticks: the pg_cron job's schedule. 20 where pg_cron takes seconds (1.5 and
  -- later, as Supabase ships it), else 60: shorter ticks start fewer invocations at a time for
  -- the same fleet.
  tick_seconds integer not null default 60 check (tick_seconds between 1 and 3600),
  -- Early refreshes (eager policy only): at most this share of a tick's spare capacity ...
  early_share_percent integer not null default 50 check (early_share_percent between 0 and 100),
  -- ... for connections due at most this long after the tick's own horizon ...
  early_window interval not null default interval '45 minutes'
    check (early_window >= interval '0'),
  -- ... whose pair was issued at least this long ago (so a token is never rotated again minutes
  -- after it was issued, whatever the early window; refresh_verdict says how a pair is dated).
  early_min_token_age interval not null default interval '30 minutes'
    check (early_min_token_age >= interval '0'),
  -- A new pair (connected, or stored the original app's way, within the last 10 minutes) is
  -- first due up to this much earlier than its token's expiry says (uniformly drawn), so that
  -- malls connected together do not stay due together. Keep it under the token's lifetime less
  -- the refresh margin (2 h − 30 min).
  first_due_spread interval not null default interval '60 minutes'
    check (first_due_spread >= interval '0'),
  updated_at timestamptz not null default now()
);

comment on table cafe24_private.refresh_schedule_settings is
  'The refresh schedule''s settings (one row). Change them with cafe24_private.set_refresh_schedule(…).';

-- Whether this database's pg_cron takes 'N seconds' schedules (1.5 and later).
create or replace function cafe24_private.pg_cron_takes_seconds()
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce((
    select string_to_array(regexp_replace(extversion, '[^0-9.].*$', ''), '.')::integer[]
      >= array[1, 5]
    from pg_extension where extname = 'pg_cron'
  ), false)
$$;

-- The pg_cron schedule for a tick of p_tick_seconds: whole minutes that divide an hour as a cron
-- expression, shorter ticks as pg_cron's 'N seconds' (pg_cron 1.5 and later).
create or replace function cafe24_private.refresh_cron_schedule(p_tick_seconds integer)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_tick_seconds between 1 and 59 then
    return format('%s seconds', p_tick_seconds);
  elsif p_tick_seconds = 60 then
    return '* * * * *';
  elsif p_tick_seconds = 3600 then
    return '0 * * * *';
  elsif p_tick_seconds between 120 and 1800 and p_tick_seconds % 60 = 0
    and 60 % (p_tick_seconds / 60) = 0
  then
    return format('*/%s * * * *', p_tick_seconds / 60);
  end if;
  raise exception 'tick_seconds must be 1 to 59, or a number of minutes that divides an hour (60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800, 3600); got %', p_tick_seconds
    using errcode = '22023';
end
$$;

-- Registers the cafe24-refresh job with the settings' tick (by name: an existing job is updated,
-- never duplicated). Sub-minute ticks need pg_cron 1.5.
create or replace function cafe24_private.schedule_refresh_job()
returns text
language plpgsql
set search_path = ''
as $$
declare
  v_schedule text := cafe24_private.refresh_cron_schedule(
    (select s.tick_seconds from cafe24_private.refresh_schedule_settings s));
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    raise notice 'pg_cron is not installed: cafe24-refresh is not scheduled';
    return null;
  end if;
  if v_schedule like '% seconds' and not cafe24_private.pg_cron_takes_seconds() then
    raise exception 'a tick under 60 seconds needs pg_cron 1.5 or later (this database has %)',
      (select extversion from pg_extension where extname = 'pg_cron')
      using errcode = '22023';
  end if;
  perform cron.schedule('cafe24-refresh', v_schedule,
    'select cafe24_private.invoke_cafe24_refresh()');
  return v_schedule;
end
$$;

-- Changes any of the settings (the others stay), reschedules the job when the tick changes, and
-- returns the row.
--   select * from cafe24_private.set_refresh_schedule(max_parallel_invocations => 30);
create or replace function cafe24_private.set_refresh_schedule(
  per_invocation_cap integer default null,
  max_parallel_invocations integer default null,
  tick_seconds integer default null,
  early_share_percent integer default null,
  early_window interval default null,
  early_min_token_age interval default null,
  first_due_spread interval default null
)
returns cafe24_private.refresh_schedule_settings
language plpgsql
set search_path = ''
as $$
declare
  v_row cafe24_private.refresh_schedule_settings;
begin
  if set_refresh_schedule.tick_seconds is not null then
    perform cafe24_private.refresh_cron_schedule(set_refresh_schedule.tick_seconds);
  end if;
  update cafe24_private.refresh_schedule_settings s set
    per_invocation_cap = coalesce(set_refresh_schedule.per_invocation_cap, s.per_invocation_cap),
    max_parallel_invocations =
      coalesce(set_refresh_schedule.max_parallel_invocations, s.max_parallel_invocations),
    tick_seconds = coalesce(set_refresh_schedule.tick_seconds, s.tick_seconds),
    early_share_percent = coalesce(set_refresh_schedule.early_share_percent, s.early_share_percent),
    early_window = coalesce(set_refresh_schedule.early_window, s.early_window),
    early_min_token_age = coalesce(set_refresh_schedule.early_min_token_age, s.early_min_token_age),
    first_due_spread = coalesce(set_refresh_schedule.first_due_spread, s.first_due_spread),
    updated_at = now()
  where s.id
  returning s.* into v_row;
  if set_refresh_schedule.tick_seconds is not null then
    perform cafe24_private.schedule_refresh_job();
  end if;
  return v_row;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Ticks
-- ---------------------------------------------------------------------------------------------

create table cafe24_private.refresh_ticks (
  id bigserial primary key,
  ticked_at timestamptz not null default now(),
  -- The policy the tick counted under: the one the last cron run recorded (the function's
  -- CAFE24_REFRESH_POLICY), eager before any.
  policy text not null,
  -- Connections due before the next tick (the refresh margin plus one tick from now).
  due bigint not null,
  -- Early refreshes (eager): the even share per tick of what comes due within the early window,
  -- and how many not-yet-due connections this tick refreshes to fill the gap up to it.
  even_share bigint,
  early bigint not null default 0,
  -- due + early: what the tick's invocations may refresh together.
  requested bigint not null,
  per_invocation_cap integer not null,
  max_parallel_invocations integer not null,
  -- Requests sent, and the max_connections each carried (requested split evenly, ≤ the cap).
  invocations integer not null default 0,
  per_invocation integer,
  -- More invocations were needed than max_parallel_invocations allows: the rest waits.
  bound_hit boolean not null default false,
  -- sent | nothing_due | refused (reason says why: a Vault secret, the project URL).
  outcome text not null check (outcome in ('sent', 'nothing_due', 'refused')),
  reason text,
  request_ids bigint[],
  -- The scope the tick gives its runs (start_refresh_run copies it).
  lookahead interval not null,
  early_window interval,
  early_min_token_age interval,
  -- Runs that started for this tick (each run's slot is its place in this count).
  runs_started integer not null default 0
);

create index refresh_ticks_ticked_at_idx on cafe24_private.refresh_ticks (ticked_at);

comment on table cafe24_private.refresh_ticks is
  'One row per cafe24-refresh tick: what it counted, how many invocations it started and why. Trimmed by trim_histories.';

-- The scope a tick counts with: the settings of the last scheduled run (the function's refresh
-- margin, policy, windows and key ids, recorded with every run), as of p_as_of, looking
-- p_lookahead ahead.
-- Before the first scheduled run, the function's defaults (config.ts): 30-minute margin, eager.
create or replace function cafe24_private.tick_scope(
  p_as_of timestamptz,
  p_lookahead interval,
  p_early_window interval default null,
  p_early_min_token_age interval default null
)
returns cafe24_private.refresh_scope
language sql
stable
set search_path = ''
as $$
  select cafe24_private.scope_with_key_ids(cafe24_private.make_scope(
    p_as_of,
    coalesce(r.refresh_margin, interval '30 minutes'),
    false,
    coalesce(r.policy, 'eager'),
    coalesce(r.keep_alive_window, interval '7 days'),
    coalesce(r.token_request_window, interval '24 hours'),
    null,
    null,
    coalesce(r.lease_duration, interval '75 seconds'),
    p_lookahead,
    p_early_window,
    p_early_min_token_age
  ), r.token_key_ids)
  from (select 1) one
  left join lateral (
    select * from cafe24_private.refresh_runs r
    where r.trigger = 'cron' and r.refresh_margin is not null
    order by r.started_at desc
    limit 1
  ) r on true
$$;

-- How many not-yet-due connections a tick may refresh early: enough to bring the tick up to its
-- even share of what comes due within the early window (p_upcoming spread over that window), but
-- at most p_early_share_percent of the capacity the due connections leave. Pure.
create or replace function cafe24_private.refresh_tick_early_budget(
  p_due bigint,
  p_upcoming bigint,
  p_capacity bigint,
  p_tick_seconds integer,
  p_early_window interval,
  p_early_share_percent integer
)
returns table (even_share bigint, budget bigint)
language sql
immutable
set search_path = ''
as $$
  select e.share,
    greatest(0, least(
      e.share - p_due,
      floor(greatest(p_capacity - p_due, 0) * p_early_share_percent / 100.0)::bigint
    ))
  from (
    select ceil(p_upcoming * p_tick_seconds
      / (p_tick_seconds + extract(epoch from p_early_window)))::bigint as share
  ) e
$$;

-- How a tick splits p_requested connections into invocations: as few as the cap allows, at most
-- p_max_parallel, each given an even share (≤ the cap). Pure.
create or replace function cafe24_private.refresh_tick_split(
  p_requested bigint,
  p_cap integer,
  p_max_parallel integer
)
returns table (invocations integer, per_invocation integer, bound_hit boolean)
language sql
immutable
set search_path = ''
as $$
  select k.n, case when k.n = 0 then null else least(p_cap, ceil(p_requested::numeric / k.n))::integer end,
    k.needed > p_max_parallel
  from (
    select least(ceil(greatest(p_requested, 0)::numeric / p_cap), p_max_parallel)::integer as n,
      ceil(greatest(p_requested, 0)::numeric / p_cap) as needed
  ) k
$$;

-- pg_cron's job, every tick: counts what is due before the next tick, adds early refreshes when
-- there is room (eager), and sends that many connections' worth of cafe24-refresh invocations
-- (call_project_function: Vault, the URL checks, the signature, pg_net). Each request's body
-- carries the tick and max_connections; nothing is sent when nothing is due. Returns the tick's
-- id (cafe24_private.refresh_ticks says what it did and why). Security definer, for Vault (see
-- call_project_function).
create or replace function cafe24_private.invoke_cafe24_refresh()
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_settings cafe24_private.refresh_schedule_settings;
  v_now timestamptz := now();
  v_lookahead interval;
  v_scope cafe24_private.refresh_scope;
  v_capacity bigint;
  v_due bigint;
  v_upcoming bigint;
  v_even_share bigint;
  v_budget bigint := 0;
  v_early bigint := 0;
  v_split record;
  v_tick_id bigint;
  v_call record;
begin
  select * into v_settings from cafe24_private.refresh_schedule_settings where id;
  v_lookahead := make_interval(secs => v_settings.tick_seconds);
  v_capacity := v_settings.per_invocation_cap::bigint * v_settings.max_parallel_invocations;
  v_scope := cafe24_private.tick_scope(v_now, v_lookahead);
  v_due := cafe24_private.count_claimable_in(v_scope);

  if v_scope.policy = 'eager' and v_settings.early_share_percent > 0 and v_due < v_capacity then
    v_upcoming := cafe24_private.count_claimable_in(
      cafe24_private.tick_scope(v_now, v_lookahead + v_settings.early_window));
    select b.even_share, b.budget into v_even_share, v_budget
    from cafe24_private.refresh_tick_early_budget(v_due, v_upcoming, v_capacity,
      v_settings.tick_seconds, v_settings.early_window, v_settings.early_share_percent) b;
    if v_budget > 0 then
      v_early := greatest(0, cafe24_private.count_claimable_in(
        cafe24_private.tick_scope(v_now, v_lookahead, v_settings.early_window,
          v_settings.early_min_token_age),
        v_due + v_budget) - v_due);
    end if;
  end if;

  select * into v_split from cafe24_private.refresh_tick_split(
    v_due + v_early, v_settings.per_invocation_cap, v_settings.max_parallel_invocations);

  insert into cafe24_private.refresh_ticks (
    ticked_at, policy, due, even_share, early, requested, per_invocation_cap,
    max_parallel_invocations, per_invocation, bound_hit, outcome, lookahead, early_window,
    early_min_token_age
  ) values (
    v_now, v_scope.policy, v_due, v_even_share, v_early, v_due + v_early,
    v_settings.per_invocation_cap, v_settings.max_parallel_invocations, v_split.per_invocation,
    v_split.bound_hit, case when v_split.invocations = 0 then 'nothing_due' else 'sent' end,
    v_lookahead,
    case when v_early > 0 then v_settings.early_window end,
    case when v_early > 0 then v_settings.early_min_token_age end
  )
  returning id into v_tick_id;

  -- Called on idle ticks too (with no request to send), so that a missing secret or a bad
  -- project URL is reported every tick, not only once something is due.
  select * into v_call from cafe24_private.call_project_function(
    'cafe24-refresh',
    jsonb_build_object('trigger', 'cron', 'tick', v_tick_id,
      'max_connections', v_split.per_invocation),
    v_split.invocations);
  update cafe24_private.refresh_ticks t
  set invocations = coalesce(cardinality(v_call.request_ids), 0),
      request_ids = v_call.request_ids,
      outcome = case
        when v_call.refusal is not null then 'refused'
        when v_split.invocations = 0 then 'nothing_due'
        else 'sent'
      end,
      reason = v_call.refusal
  where t.id = v_tick_id;
  return v_tick_id;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- A jittered first due time for new connections
-- ---------------------------------------------------------------------------------------------

-- A pair issued within the last 10 minutes is first due up to first_due_spread earlier than its
-- token's expiry says, drawn at random, never before now. Its issue is the later of
-- providers.cafe24.connected_at (the connect flow's store_connection sets it; the sync trigger
-- keeps it in connections.connected_at) and its access token's expiry less the lifetime Cafe24
-- gives access tokens, so pairs stored the original app's way (no connected_at, no history here: an imported fleet) are spread too. Malls
-- connected or imported in one go then come due over an hour instead of in one minute. Only when
-- tokens arrive from outside a refresh (no run holds the row) and push the due time later; a
-- refresh's own new tokens are never moved, and the update trigger's WHEN leaves leased rows (a
-- refresh storing its pair) out, so the hot path does not call it.
create or replace function cafe24_private.jitter_first_due()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_spread interval;
  v_connected_at timestamptz;
  v_issued_at timestamptz;
begin
  if new.row_state <> 'ok' or not isfinite(new.due_at) then
    return new;
  end if;
  if tg_op = 'UPDATE' and (new.due_at <= old.due_at or old.lease_id is not null) then
    return new;
  end if;
  -- The sync trigger writes with INSERT … ON CONFLICT DO UPDATE, which fires the insert trigger
  -- for the proposed row too: an existing row is the update trigger's to judge.
  if tg_op = 'INSERT' and exists (
    select 1 from cafe24_private.connections c where c.auth_settings_id = new.auth_settings_id
  ) then
    return new;
  end if;
  select s.first_due_spread into v_spread from cafe24_private.refresh_schedule_settings s;
  if v_spread is null or v_spread <= interval '0' then
    return new;
  end if;
  v_connected_at := cafe24_private.parse_instant(to_jsonb(new.connected_at));
  v_issued_at := greatest(v_connected_at,
    new.access_expires_at - cafe24_private.access_token_lifetime());
  if v_issued_at is null or v_issued_at < now() - interval '10 minutes' then
    return new;
  end if;
  new.due_at := greatest(now(), new.due_at - random() * v_spread);
  return new;
end
$$;

create trigger jitter_first_due_on_insert
  before insert on cafe24_private.connections
  for each row execute function cafe24_private.jitter_first_due();

create trigger jitter_first_due_on_update
  before update of due_at on cafe24_private.connections
  for each row when (new.due_at is distinct from old.due_at and old.lease_id is null)
  execute function cafe24_private.jitter_first_due();

-- ---------------------------------------------------------------------------------------------
-- What operators look at, and the histories
-- ---------------------------------------------------------------------------------------------

-- The backlog now, as the next tick will see it: connections due now (without the tick's
-- lookahead), when the oldest of them became due (its due time less the refresh margin; null
-- when only unknown expiries are due), and active connections whose access token has already
-- expired (always 0 under eager when the schedule keeps up; keep_alive lets idle ones expire).
create or replace function cafe24_private.refresh_backlog()
returns table (
  as_of timestamptz,
  policy text,
  due_now bigint,
  oldest_due_since timestamptz,
  overdue_for interval,
  access_expired bigint
)
language plpgsql
stable
set search_path = ''
as $$
declare
  v_scope cafe24_private.refresh_scope := cafe24_private.tick_scope(now(), interval '0');
  v_oldest timestamptz;
begin
  select min(c.due_at) filter (where c.due_at > '-infinity') into v_oldest
  from cafe24_private.connections c
  where c.row_state = 'ok' and c.status = 'active' and c.due_at <= v_scope.claim_before
    and cafe24_private.refresh_verdict(c, v_scope) = 'due';
  as_of := v_scope.as_of;
  policy := v_scope.policy;
  due_now := cafe24_private.count_claimable_in(v_scope);
  oldest_due_since := v_oldest - (v_scope.due_before - v_scope.as_of);
  overdue_for := greatest(interval '0', now() - oldest_due_since);
  select count(*) into access_expired
  from cafe24_private.connections c
  where c.row_state = 'ok' and c.status = 'active' and c.access_expires_at < now();
  return next;
end
$$;

-- The daily cleanup (pg_cron job cafe24-trim-histories). Histories that nothing trims grow
-- forever: pg_cron never deletes cron.job_run_details, and the runs, the ticks (kept as long as
-- pg_cron's own run details), the calls whose answer never came and the nonces taken are ours.
-- A nonce is kept an hour: a signature is fresh for 5 minutes either side of its timestamp, so
-- none that carries a deleted nonce is still taken. (pg_net trims its own responses after 6
-- hours.)
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

-- ---------------------------------------------------------------------------------------------
-- Privileges: service_role reads the tables; only the functions' owner writes and calls.
-- ---------------------------------------------------------------------------------------------

revoke all on table cafe24_private.project_calls from public, anon, authenticated, service_role;
revoke all on table cafe24_private.project_url_refusals
  from public, anon, authenticated, service_role;
grant select on table cafe24_private.project_calls to service_role;
grant select on table cafe24_private.project_url_refusals to service_role;
revoke all on table cafe24_private.cron_nonces from public, anon, authenticated, service_role;
revoke all on table cafe24_private.refresh_schedule_settings
  from public, anon, authenticated, service_role;
revoke all on table cafe24_private.refresh_ticks from public, anon, authenticated, service_role;
revoke all on sequence cafe24_private.refresh_ticks_id_seq
  from public, anon, authenticated, service_role;
grant select on table cafe24_private.refresh_schedule_settings to service_role;
grant select on table cafe24_private.refresh_ticks to service_role;

revoke all on function cafe24_private.project_url_problem(text) from public, anon, authenticated;
revoke all on function cafe24_private.location_header(jsonb) from public, anon, authenticated;
revoke all on function cafe24_private.call_project_function(text, jsonb, integer)
  from public, anon, authenticated, service_role;
revoke all on function cafe24_private.pg_cron_takes_seconds() from public, anon, authenticated;
revoke all on function cafe24_private.refresh_cron_schedule(integer) from public, anon, authenticated;
revoke all on function cafe24_private.schedule_refresh_job() from public, anon, authenticated;
revoke all on function cafe24_private.set_refresh_schedule(
  integer, integer, integer, integer, interval, interval, interval
) from public, anon, authenticated, service_role;
revoke all on function cafe24_private.tick_scope(timestamptz, interval, interval, interval)
  from public, anon, authenticated;
revoke all on function cafe24_private.refresh_tick_early_budget(
  bigint, bigint, bigint, integer, interval, integer
) from public, anon, authenticated;
revoke all on function cafe24_private.refresh_tick_split(bigint, integer, integer)
  from public, anon, authenticated;
revoke all on function cafe24_private.invoke_cafe24_refresh() from public, anon, authenticated;
revoke all on function cafe24_private.jitter_first_due() from public, anon, authenticated;
revoke all on function cafe24_private.refresh_backlog() from public, anon, authenticated;
revoke all on function cafe24_private.trim_histories(interval, interval)
  from public, anon, authenticated;
