import assert from "node:assert/strict";
import { verifyUserJwt } from "../../../supabase/functions/_shared/platform/user_auth.ts";
import { startTestAuth } from "../../support/auth.ts";

const JWKS_GET = "GET /auth/v1/.well-known/jwks.json";

Deno.test("verifyUserJwt() accepts a valid user token and returns its sub", async () => {
  const auth = await startTestAuth();
  try {
    const sub = crypto.randomUUID();
    const user = await verifyUserJwt(await auth.mint({ sub }), {
      supabaseUrl: auth.url,
      apiKey: auth.anonKey,
    });
    assert.deepEqual(user, { id: sub });
  } finally {
    await auth.close();
  }
});

Deno.test("verifyUserJwt() refuses an anonymous session", async () => {
  const auth = await startTestAuth();
  try {
    const settings = { supabaseUrl: auth.url, apiKey: auth.anonKey };
    const sub = crypto.randomUUID();
    const anonymous = await auth.mint({ sub, extraClaims: { is_anonymous: true } });
    assert.equal(await verifyUserJwt(anonymous, settings), null);
    const signedUp = await auth.mint({ sub, extraClaims: { is_anonymous: false } });
    assert.deepEqual(await verifyUserJwt(signedUp, settings), { id: sub });
  } finally {
    await auth.close();
  }
});

Deno.test("verifyUserJwt() does not refetch the JWKS for every token with an unknown kid", async () => {
  const auth = await startTestAuth();
  try {
    // A fresh project URL path so that no client cached by an earlier test is reused.
    const settings = { supabaseUrl: `${auth.url}/`, apiKey: `${auth.anonKey}-kid-test` };
    assert.ok(await verifyUserJwt(await auth.mint({ sub: crypto.randomUUID() }), settings));
    const before = auth.requests.filter((r) => r === JWKS_GET).length;
    for (let i = 0; i < 5; i++) {
      const token = await auth.mintWithWrongKey({ sub: crypto.randomUUID(), kid: `made-up-${i}` });
      assert.equal(await verifyUserJwt(token, settings), null);
    }
    const after = auth.requests.filter((r) => r === JWKS_GET).length;
    assert.equal(after - before, 0, "made-up kids were answered from the cached JWKS");
    assert.ok(auth.requests.every((r) => r === JWKS_GET), "nothing but the JWKS was requested");
  } finally {
    await auth.close();
  }
});
