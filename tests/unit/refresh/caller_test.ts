import assert from "node:assert/strict";
import { identifyRefreshCaller } from "../../../supabase/functions/_shared/refresh/caller.ts";
import { requestParameters } from "../../../supabase/functions/_shared/platform/http.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";
import { signBody } from "../../../supabase/functions/_shared/platform/signature.ts";

const SECRET = "cron-secret-of-at-least-32-characters!";
const ENV = { CRON_SECRET: SECRET };
const URL_ = "https://ref.supabase.co/functions/v1/cafe24-refresh";
const BODY = '{"trigger": "cron", "max_connections": 60}';

function signed(
  body: string,
  options: { at?: number; secret?: string; url?: string } = {},
): Request {
  const at = options.at ?? Math.floor(Date.now() / 1000);
  return new Request(options.url ?? URL_, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-cron-timestamp": String(at),
      "x-cron-signature": signBody(options.secret ?? SECRET, at, body),
    },
    body,
  });
}

async function refused(request: Request): Promise<string> {
  const error = await identifyRefreshCaller(request, ENV).then(() => null, (e) => e);
  assert.ok(error instanceof RequestError, "refused");
  return error.code;
}

Deno.test("identifyRefreshCaller() takes a call signed with CRON_SECRET as the scheduler, body intact", async () => {
  const request = signed(BODY);
  assert.deepEqual(await identifyRefreshCaller(request, ENV), { kind: "secret" });
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

Deno.test("identifyRefreshCaller() still takes CRON_SECRET itself from an operator", async () => {
  const request = new Request(URL_, { method: "POST", headers: { "x-cron-secret": SECRET } });
  assert.deepEqual(await identifyRefreshCaller(request, ENV), { kind: "secret" });
  const wrong = new Request(URL_, { method: "POST", headers: { "x-cron-secret": "nope" } });
  assert.equal(await refused(wrong), "UNAUTHORIZED");
});
