// /__sandbox/* JSON control API, for drivers in another process (benchmark, dev stack, tests).
// Tokens pass through it, so it answers only loopback peers that send the sandbox's control token
// as `Authorization: Bearer` (checked in server.ts, after the Host check every request gets).
//
//   POST malls {mall_id, …mall options, …lifetimes}   add or change a mall, issue a grant
//   POST malls/bulk {mall_ids}                          a grant for each
//   POST malls/{id}/config {…mall options}              change a mall without issuing
//        (app_deleted, new_grant_revokes_older_pairs, deny_authorization, scopes, …)
//   GET  malls/{id}/live                                the newest live refresh token
//   GET  malls/{id}/pairs                               every live pair
//   POST malls/{id}/revoke [{refresh_token}]            revoke that pair, or the newest
//   GET|POST settings                                   consent_page, new_grant_revokes_older_pairs,
//                                                       app_deleted_refresh
//   GET  counters, POST counters/reset, GET log (refresh log), GET revocations
//   GET  requests?since=N&wait_ms=M                     requests after seq N, waiting up to M ms
//   POST malls/{id}/kill_access_tokens                 its access tokens die now (401s)
//   GET  malls/{id}/calls_per_second                    {seconds: {"<second>": calls}}
//   POST faults, POST faults/queue, POST faults/clear, GET|POST clock
//   POST notices {mall_id, event_no, url, api_key}     send an app notice (notices.ts)
//   POST faults/admin_queue {scope, kinds}              faults for the next Admin API calls
//                                                       (rate_limited, rate_limited_retry_after, …)

import type { Cafe24Sandbox, IssueOptions, MallOptions, SandboxSettings } from "./types.ts";
import { handleNoticeControl } from "./notices.ts";
import { jsonResponse } from "./util.ts";

class BadRequest extends Error {}

function field<T>(
  body: Record<string, unknown>,
  name: string,
  check: (v: unknown) => boolean,
): T | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (!check(value)) throw new BadRequest(`invalid ${name}`);
  return value as T;
}

const isNumber = (v: unknown) => typeof v === "number" && Number.isFinite(v);
const isString = (v: unknown) => typeof v === "string";
const isStringArray = (v: unknown) => Array.isArray(v) && v.every(isString);
const isBoolean = (v: unknown) => typeof v === "boolean";

/** The longest a GET requests?wait_ms= may hold its answer. */
const MAX_WAIT_MS = 30_000;

function issueOptions(body: Record<string, unknown>): IssueOptions {
  const options: IssueOptions = {};
  const access = field<number>(body, "access_token_lifetime_ms", isNumber);
  if (access !== undefined) options.accessTokenLifetimeMs = access;
  const refresh = field<number>(body, "refresh_token_lifetime_ms", isNumber);
  if (refresh !== undefined) options.refreshTokenLifetimeMs = refresh;
  return options;
}

function mallOptions(body: Record<string, unknown>): MallOptions {
  const options: MallOptions = {};
  const scopes = field<string[]>(body, "scopes", isStringArray);
  if (scopes !== undefined) options.scopes = scopes;
  const shops = field<object[]>(body, "shops", Array.isArray);
  if (shops !== undefined) options.shops = shops;
  const deny = field<boolean>(body, "deny_authorization", isBoolean);
  if (deny !== undefined) options.denyAuthorization = deny;
  const status = field<number>(body, "shops_status", isNumber);
  if (status !== undefined) options.shopsStatus = status;
  const userId = field<string>(body, "user_id", isString);
  if (userId !== undefined) options.userId = userId;
  const revokesOlder = field<boolean | null>(
    body,
    "new_grant_revokes_older_pairs",
    (v) => v === null || isBoolean(v),
  );
  if (revokesOlder !== undefined) options.newGrantRevokesOlderPairs = revokesOlder;
  const deleted = field<boolean>(body, "app_deleted", isBoolean);
  if (deleted !== undefined) options.appDeleted = deleted;
  return options;
}

function settingsChanges(body: Record<string, unknown>): Partial<SandboxSettings> {
  const changes: Partial<SandboxSettings> = {};
  const consentPage = field<boolean>(body, "consent_page", isBoolean);
  if (consentPage !== undefined) changes.consentPage = consentPage;
  const revokesOlder = field<boolean>(body, "new_grant_revokes_older_pairs", isBoolean);
  if (revokesOlder !== undefined) changes.newGrantRevokesOlderPairs = revokesOlder;
  const answer = field<SandboxSettings["appDeletedRefresh"]>(body, "app_deleted_refresh", isString);
  if (answer !== undefined) changes.appDeletedRefresh = answer;
  const withRead = field<boolean>(body, "write_scope_grants_read", isBoolean);
  if (withRead !== undefined) changes.writeScopeGrantsRead = withRead;
  return changes;
}

function settingsJson(settings: SandboxSettings): Record<string, unknown> {
  return {
    consent_page: settings.consentPage,
    new_grant_revokes_older_pairs: settings.newGrantRevokesOlderPairs,
    app_deleted_refresh: settings.appDeletedRefresh,
    write_scope_grants_read: settings.writeScopeGrantsRead,
  };
}

function nonNegativeParam(params: URLSearchParams, name: string, fallback: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(value) || value < 0) {
    throw new BadRequest(`${name} must be a non-negative number`);
  }
  return value;
}

async function readJson(request: Request): Promise<Record<string, unknown>> {
  const text = await request.text();
  if (text.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadRequest("body is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new BadRequest("body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

export async function handleControl(
  sandbox: Cafe24Sandbox,
  hasMall: (mallId: string) => boolean,
  request: Request,
  path: string[],
): Promise<Response> {
  try {
    return await dispatch(sandbox, hasMall, request, path);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return jsonResponse(400, { error: message });
  }
}

async function dispatch(
  sandbox: Cafe24Sandbox,
  hasMall: (mallId: string) => boolean,
  request: Request,
  path: string[],
): Promise<Response> {
  const route = `${request.method} ${path.join("/")}`;
  switch (route) {
    case "POST malls": {
      const body = await readJson(request);
      const mallId = field<string>(body, "mall_id", isString);
      if (mallId === undefined) throw new BadRequest("mall_id is required");
      sandbox.addMall(mallId, mallOptions(body));
      return jsonResponse(200, sandbox.issueTokens(mallId, issueOptions(body)));
    }
    case "POST malls/bulk": {
      const body = await readJson(request);
      const mallIds = field<string[]>(body, "mall_ids", isStringArray);
      if (mallIds === undefined) throw new BadRequest("mall_ids is required");
      const options = issueOptions(body);
      const result: Record<string, unknown> = {};
      for (const mallId of mallIds) result[mallId] = sandbox.issueTokens(mallId, options);
      return jsonResponse(200, result);
    }
    case "GET counters":
      return jsonResponse(200, sandbox.counters());
    case "GET log":
      return jsonResponse(200, { entries: sandbox.refreshLog() });
    case "GET requests": {
      // Long polling: a test waits for the request it expects instead of sleeping.
      const params = new URL(request.url).searchParams;
      const since = nonNegativeParam(params, "since", 0);
      const waitMs = Math.min(nonNegativeParam(params, "wait_ms", 0), MAX_WAIT_MS);
      const entries = await sandbox.waitForRequests(since, waitMs);
      const everything = sandbox.requestLog();
      const lastSeq = Math.max(since, everything[everything.length - 1]?.seq ?? 0);
      return jsonResponse(200, { entries, last_seq: lastSeq });
    }
    case "GET revocations":
      return jsonResponse(200, { entries: sandbox.revocationLog() });
    case "GET settings":
      return jsonResponse(200, settingsJson(sandbox.settings()));
    case "POST settings": {
      sandbox.configure(settingsChanges(await readJson(request)));
      return jsonResponse(200, settingsJson(sandbox.settings()));
    }
    case "POST counters/reset":
      sandbox.resetCounters();
      return jsonResponse(200, {});
    case "POST faults": {
      const body = await readJson(request);
      const scope = field<string>(body, "scope", isString);
      if (scope === undefined) throw new BadRequest("scope is required");
      sandbox.setFaults(scope, (body.plan ?? {}) as never);
      return jsonResponse(200, {});
    }
    case "POST faults/queue": {
      const body = await readJson(request);
      const scope = field<string>(body, "scope", isString);
      if (scope === undefined) throw new BadRequest("scope is required");
      if (!Array.isArray(body.kinds)) throw new BadRequest("kinds must be an array");
      sandbox.queueFaults(scope, body.kinds as never);
      return jsonResponse(200, {});
    }
    case "POST notices":
      return await handleNoticeControl(request);
    case "POST faults/admin_queue": {
      const body = await readJson(request);
      const scope = field<string>(body, "scope", isString);
      if (scope === undefined) throw new BadRequest("scope is required");
      if (!Array.isArray(body.kinds)) throw new BadRequest("kinds must be an array");
      sandbox.queueAdminFaults(scope, body.kinds as never);
      return jsonResponse(200, {});
    }
    case "POST faults/clear":
      sandbox.clearFaults();
      return jsonResponse(200, {});
    case "GET clock":
      return jsonResponse(200, { now_ms: sandbox.clock.now() });
    case "POST clock": {
      const body = await readJson(request);
      const advance = field<number>(body, "advance_ms", isNumber);
      const set = field<number>(body, "set_ms", isNumber);
      if (advance === undefined && set === undefined) {
        throw new BadRequest("advance_ms or set_ms is required");
      }
      if (set !== undefined) sandbox.clock.set(set);
      if (advance !== undefined) sandbox.clock.advance(advance);
      return jsonResponse(200, { now_ms: sandbox.clock.now() });
    }
  }
  const [head, mallId, action, ...extra] = path;
  if (head === "malls" && mallId !== undefined && extra.length === 0) {
    const known = hasMall(mallId);
    if (request.method === "GET" && action === "live") {
      if (!known) return jsonResponse(404, { error: "unknown mall" });
      return jsonResponse(200, { refresh_token: sandbox.liveRefreshToken(mallId) ?? null });
    }
    if (request.method === "GET" && action === "pairs") {
      if (!known) return jsonResponse(404, { error: "unknown mall" });
      return jsonResponse(200, { pairs: sandbox.livePairs(mallId) });
    }
    if (request.method === "POST" && action === "revoke") {
      // Optional body {"refresh_token": …}: that pair; otherwise the mall's newest live pair.
      const refreshToken = field<string>(await readJson(request), "refresh_token", isString);
      sandbox.revokeRefreshToken(mallId, refreshToken);
      return jsonResponse(200, {});
    }
    if (request.method === "POST" && action === "kill_access_tokens") {
      if (!known) return jsonResponse(404, { error: "unknown mall" });
      return jsonResponse(200, { killed: sandbox.killAccessTokens(mallId) });
    }
    if (request.method === "GET" && action === "calls_per_second") {
      if (!known) return jsonResponse(404, { error: "unknown mall" });
      return jsonResponse(200, { seconds: sandbox.callsPerSecond(mallId) });
    }
    if (request.method === "POST" && action === "config") {
      // Changes a mall's behaviour (uninstall, grant mode, …) without issuing tokens.
      if (!known) return jsonResponse(404, { error: "unknown mall" });
      sandbox.addMall(mallId, mallOptions(await readJson(request)));
      return jsonResponse(200, {});
    }
  }
  return jsonResponse(404, { error: `no control route ${route}` });
}
