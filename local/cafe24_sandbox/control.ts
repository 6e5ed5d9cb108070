// /__sandbox/* JSON control API, for drivers in another process (benchmark, dev stack).
// Tokens pass through it, so it answers loopback peers only (checked in server.ts).

import type { Cafe24Sandbox, IssueOptions, MallOptions } from "./types.ts";
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
  const deny = field<boolean>(body, "deny_authorization", (v) => typeof v === "boolean");
  if (deny !== undefined) options.denyAuthorization = deny;
  const status = field<number>(body, "shops_status", isNumber);
  if (status !== undefined) options.shopsStatus = status;
  const userId = field<string>(body, "user_id", isString);
  if (userId !== undefined) options.userId = userId;
  return options;
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
    if (request.method === "GET" && action === "live") {
      if (!hasMall(mallId)) return jsonResponse(404, { error: "unknown mall" });
      return jsonResponse(200, { refresh_token: sandbox.liveRefreshToken(mallId) ?? null });
    }
    if (request.method === "POST" && action === "revoke") {
      sandbox.revokeRefreshToken(mallId);
      return jsonResponse(200, {});
    }
  }
  return jsonResponse(404, { error: `no control route ${route}` });
}
