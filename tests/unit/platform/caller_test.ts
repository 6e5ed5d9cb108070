import assert from "node:assert/strict";
import { identifyCaller } from "../../../supabase/functions/_shared/platform/caller.ts";
import { requestParameters } from "../../../supabase/functions/_shared/platform/http.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";
import { signCronCall } from "../../../supabase/functions/_shared/platform/signature.ts";

const SECRET = "cron-secret-of-at-least-32-characters!";
const ENV = { CRON_SECRET: SECRET };
const URL_ = "https://ref.supabase.co/functions/v1/cafe24-refresh";
/** The nonces taken, as cafe24_private.cron_nonces keeps them. */
const taken = new Set<string>();
const takeNonce = (nonce: string) => {
  if (taken.has(nonce)) return Promise.resolve(false);
  taken.add(nonce);
  return Promise.resolve(true);
};
/** cafe24-refresh's callers: the scheduler (or an operator with CRON_SECRET) and users. */
const identifyRefreshCaller = (request: Request, env: Record<string, string>) =>
  identifyCaller(request, env, "cafe24-refresh", ["secret", "user"], takeNonce);
const BODY = '{"trigger": "cron", "max_connections": 60}';

function signed(
  body: string,
  options: { at?: number; secret?: string; url?: string; nonce?: string; fn?: string } = {},
): Request {
  const at = options.at ?? Math.floor(Date.now() / 1000);
  const nonce = options.nonce ?? crypto.randomUUID();
  return new Request(options.url ?? URL_, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-cron-timestamp": String(at),
      "x-cron-nonce": nonce,
      "x-cron-signature": signCronCall(
        options.secret ?? SECRET,
        options.fn ?? "cafe24-refresh",
        at,
        nonce,
        body,
      ),
    },
    body,
  });
}

async function refused(request: Request): Promise<string> {
  const error = await identifyRefreshCaller(request, ENV).then(() => null, (e: unknown) => e);
  assert.ok(error instanceof RequestError, "refused");
  return error.code;
}

Deno.test("identifyRefreshCaller() takes a call signed with CRON_SECRET as the scheduler, body intact", async () => {
  const request = signed(BODY);
  assert.deepEqual(await identifyRefreshCaller(request, ENV), { kind: "secret", signed: true });
  // The body is still there for the handler to read.
  assert.deepEqual(await requestParameters(request), { trigger: "cron", max_connections: 60 });
});

Deno.test("identifyRefreshCaller() refuses a signed call whose body, secret, age or query differ", async () => {
  const tampered = signed(BODY);
  const forged = new Request(tampered, { body: '{"trigger": "cron", "force": true}' });
  assert.equal(await refused(forged), "UNAUTHORIZED");
  assert.equal(
    await refused(signed(BODY, { secret: "another-secret-of-32-characters-long" })),
    "UNAUTHORIZED",
  );
  const old = Math.floor(Date.now() / 1000) - 301;
  assert.equal(await refused(signed(BODY, { at: old })), "UNAUTHORIZED");
  assert.equal(await refused(signed(BODY, { url: `${URL_}?force=true` })), "UNAUTHORIZED");
});

Deno.test("identifyRefreshCaller() takes a signature once, and only for its own function", async () => {
  const nonce = crypto.randomUUID();
  const first = signed(BODY, { nonce });
  const copy = new Request(first.clone());
  assert.deepEqual(await identifyRefreshCaller(first, ENV), { kind: "secret", signed: true });
  assert.equal(await refused(copy), "UNAUTHORIZED");
  assert.equal(await refused(signed(BODY, { fn: "cafe24-events" })), "UNAUTHORIZED");
  // Without a nonce there is nothing to take once.
  const bare = signed(BODY);
  bare.headers.delete("x-cron-nonce");
  assert.equal(await refused(bare), "UNAUTHORIZED");
});

Deno.test("identifyCaller() runs no signed call whose nonce it cannot record", async () => {
  const unreachable = () => Promise.reject(new Error("connection refused"));
  const error = await identifyCaller(signed(BODY), ENV, "cafe24-refresh", ["secret"], unreachable)
    .then(() => null, (e: unknown) => e);
  assert.ok(error instanceof RequestError && error.code === "DATABASE_UNAVAILABLE");
  // Without SUPABASE_DB_URL the nonce has nowhere to go either: a configuration error.
  const unset = await identifyCaller(signed(BODY), ENV, "cafe24-refresh", ["secret"])
    .then(() => null, (e: unknown) => e);
  assert.ok(unset instanceof RequestError && unset.code === "CONFIG_MISSING");
});

Deno.test("identifyRefreshCaller() still takes CRON_SECRET itself from an operator", async () => {
  const request = new Request(URL_, { method: "POST", headers: { "x-cron-secret": SECRET } });
  assert.deepEqual(await identifyRefreshCaller(request, ENV), { kind: "secret" });
  const wrong = new Request(URL_, { method: "POST", headers: { "x-cron-secret": "nope" } });
  assert.equal(await refused(wrong), "UNAUTHORIZED");
});

Deno.test("identifyCaller() takes only the kinds a function accepts", async () => {
  const apiKey = "sb_secret_0123456789abcdefghijklmnop";
  const env = { ...ENV, SUPABASE_SECRET_KEYS: JSON.stringify({ default: apiKey }) };
  const withKey = () => new Request(URL_, { method: "POST", headers: { apikey: apiKey } });
  assert.deepEqual(await identifyCaller(withKey(), env, "cafe24-token", ["app"]), { kind: "app" });
  const refused = await identifyCaller(withKey(), env, "cafe24-refresh", ["secret", "user"])
    .then(() => null, (e: unknown) => e);
  assert.ok(refused instanceof RequestError && refused.code === "UNAUTHORIZED");
  // CRON_SECRET is no secret API key, even where both are accepted.
  const cron = new Request(URL_, { method: "POST", headers: { apikey: SECRET } });
  const notKey = await identifyCaller(cron, env, "cafe24-token", ["app"])
    .then(() => null, (e: unknown) => e);
  assert.ok(notKey instanceof RequestError && notKey.code === "UNAUTHORIZED");
});

Deno.test("identifyCaller() needs CRON_SECRET only where the scheduler is a caller", async () => {
  const request = new Request(URL_, { method: "POST", headers: { "x-cron-secret": SECRET } });
  const unset = await identifyCaller(request, {}, "cafe24-events", ["secret"])
    .then(() => null, (e: unknown) => e);
  assert.ok(unset instanceof RequestError && unset.code === "CRON_SECRET_NOT_CONFIGURED");
  const keyOnly = await identifyCaller(request, {}, "cafe24-token", ["app"])
    .then(() => null, (e: unknown) => e);
  assert.ok(keyOnly instanceof RequestError && keyOnly.code === "UNAUTHORIZED");
});
