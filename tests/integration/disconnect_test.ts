/**
 * cafe24-disconnect: a user ends their own connection, the app's backend any connection with the
 * project's secret API key; the pair is revoked at Cafe24 and removed from the row, the settings
 * stay. Real PostgreSQL, the functions over HTTP, the Cafe24 sandbox and a local JWKS.
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../support/auth.ts";
import { browser } from "../support/connect.ts";
import { asUser } from "../support/roles.ts";
import {
  API_KEYS_ENV,
  cafe24Entry,
  connectionState,
  connectMall,
  connectStackOptions,
  CRON_SECRET,
  OTHER_SECRET_KEY,
  SECRET_KEY,
  SERVICE_ROLE_KEY,
  startRefreshStack,
} from "../support/stack.ts";
import { recordTokensSeen } from "../support/tokens_seen.ts";
import type { FunctionsServer } from "../../local/functions/server.ts";

Deno.test("cafe24-disconnect", async (t) => {
  const auth = await startTestAuth();
  const options = connectStackOptions(auth);
  const stack = await startRefreshStack({
    ...options,
    env: {
      ...options.env,
      ...API_KEYS_ENV,
    },
  });
  try {
    const { db, sandbox } = stack;
    const tokensSeen = recordTokensSeen(stack);
    const web = browser(stack);
    const [alice, bob] = [crypto.randomUUID(), crypto.randomUUID()];
    const jwt = (sub: string) => auth.mint({ sub });
    const revokes = () => sandbox.counters().requests.revoke;
    const answers: string[] = [];

    const disconnect = async (
      body: unknown,
      headers: Record<string, string>,
      server: FunctionsServer = stack.functions,
    ) => {
      const response = await fetch(`${server.url}/cafe24-disconnect`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await response.text();
      answers.push(text);
      return { status: response.status, body: JSON.parse(text), headers: response.headers };
    };
    const asBearer = (token: string) => ({ authorization: `Bearer ${token}` });
    const connectAs = async (userId: string, mallId: string) => {
      sandbox.addMall(mallId);
      const handle = await web.startConnection(await jwt(userId), mallId);
      assert.equal((await web.complete(await jwt(userId), handle)).status, 200);
      const [row] = await db.sql<{ id: string }[]>`
        select id from public.auth_settings
        where user_id = ${userId} and providers -> 'cafe24' ->> 'mall_id' = ${mallId}`;
      return row!.id;
    };
    const lastEvent = async (id: string) => {
      const [row] = await db.sql<{ type: string; code: string }[]>`
        select type, code from cafe24_private.connection_events
        where auth_settings_id = ${id} order by id desc limit 1`;
      return `${row!.type}:${row!.code}`;
    };

    let aliceRow = "";
    await t.step(
      "a user disconnects their own connection: revoked, tokens gone, settings kept",
      async () => {
        aliceRow = await connectAs(alice, "dcalice");
        await db.sql`
          update public.auth_settings
          set providers = jsonb_set(providers, '{cafe24,board_no}', '7')
          where id = ${aliceRow}`;
        const before = revokes();
        const answer = await disconnect({ mall_id: "dcalice" }, asBearer(await jwt(alice)));
        assert.equal(answer.status, 200);
        assert.deepEqual(answer.body, { disconnected: true, mall_id: "dcalice", revoked: true });
        assert.equal(answer.headers.get("cache-control"), "no-store");
        assert.equal(answer.headers.get("access-control-allow-origin"), "*");
        assert.equal(revokes(), before + 1);
        assert.equal(sandbox.liveRefreshToken("dcalice"), undefined, "dead at Cafe24");

        const entry = await cafe24Entry(db, aliceRow);
        for (const key of ["access_token", "refresh_token", "expires_at", "scopes"]) {
          assert.equal(entry[key], undefined, key);
        }
        assert.equal(entry.mall_id, "dcalice");
        assert.equal(entry.shop_no, 1);
        assert.equal(entry.board_no, 7);
        const state = await connectionState(db, aliceRow);
        assert.equal(state.status, "disconnected");
        assert.equal(state.last_error_code, "DISCONNECTED_BY_USER");
        const [view] = await asUser(
          db,
          alice,
          (sql) => sql`select * from public.cafe24_connections`,
        );
        assert.equal(view!.status, "disconnected");
        assert.equal(view!.last_error_code, "DISCONNECTED_BY_USER");
        assert.equal(await lastEvent(aliceRow), "disconnected:DISCONNECTED_BY_USER");

        const again = await disconnect({ auth_settings_id: aliceRow }, asBearer(await jwt(alice)));
        assert.deepEqual(again.body, {
          disconnected: true,
          mall_id: "dcalice",
          revoked: false,
          revoke_error: "NO_TOKENS",
        });
        assert.equal(revokes(), before + 1, "nothing left to revoke");
        assert.equal((await connectionState(db, aliceRow)).last_error_code, "DISCONNECTED_BY_USER");
      },
    );

    let bobRow = "";
    await t.step("another user's connection and unknown ones answer 404", async () => {
      bobRow = await connectAs(bob, "dcbob");
      const bobEntry = await cafe24Entry(db, bobRow);
      const before = revokes();
      const aliceJwt = asBearer(await jwt(alice));
      for (
        const body of [
          { mall_id: "dcbob" },
          { auth_settings_id: bobRow },
          { auth_settings_id: bobRow.toUpperCase() },
          { mall_id: "dcnowhere" },
          { auth_settings_id: crypto.randomUUID() },
        ]
      ) {
        const answer = await disconnect(body, aliceJwt);
        assert.deepEqual(
          { status: answer.status, body: answer.body },
          { status: 404, body: { error: "NOT_FOUND" } },
          JSON.stringify(body),
        );
      }
      assert.equal(revokes(), before);
      assert.deepEqual(await cafe24Entry(db, bobRow), bobEntry);
      assert.equal((await connectionState(db, bobRow)).status, "active");
    });

    await t.step("no credentials, the cron secret or a bad session: 401", async () => {
      const refused = [
        {},
        asBearer(CRON_SECRET),
        { apikey: CRON_SECRET },
        { "x-cron-secret": CRON_SECRET },
        { apikey: auth.anonKey },
        asBearer(await auth.mintWithWrongKey({ sub: bob })),
        asBearer(await auth.mint({ sub: bob, expiresInSeconds: -60 })),
        asBearer(await auth.mintHs256({ sub: bob })),
        asBearer(`${SECRET_KEY}x`),
      ];
      for (const headers of refused) {
        const answer = await disconnect({ mall_id: "dcbob" }, headers);
        assert.deepEqual(
          { status: answer.status, body: answer.body },
          { status: 401, body: { error: "UNAUTHORIZED" } },
          JSON.stringify(Object.keys(headers)),
        );
        assert.equal(answer.headers.get("access-control-allow-origin"), "*");
      }
      assert.equal((await connectionState(db, bobRow)).status, "active");
    });

    await t.step("malformed requests", async () => {
      const bobSession = asBearer(await jwt(bob));
      const cases: [unknown, number, string][] = [
        [{}, 400, "INVALID_REQUEST"],
        [{ mall_id: "dcbob", auth_settings_id: bobRow }, 400, "INVALID_REQUEST"],
        [{ auth_settings_id: "not-a-uuid" }, 400, "INVALID_REQUEST"],
        [{ auth_settings_id: 42 }, 400, "INVALID_REQUEST"],
        [{ mall_id: "Bad/Mall" }, 400, "INVALID_MALL_ID"],
        ["not json", 400, "INVALID_REQUEST"],
        [[], 400, "INVALID_REQUEST"],
      ];
      for (const [body, status, error] of cases) {
        const answer = await disconnect(body, bobSession);
        assert.equal(answer.status, status, JSON.stringify(body));
        assert.equal(answer.body.error, error, JSON.stringify(body));
      }
      const get = await fetch(`${stack.functions.url}/cafe24-disconnect`);
      assert.equal(get.status, 405);
      await get.body?.cancel();
      const preflight = await fetch(`${stack.functions.url}/cafe24-disconnect`, {
        method: "OPTIONS",
        headers: { origin: "https://app.test", "access-control-request-method": "POST" },
      });
      assert.equal(preflight.status, 204);
      assert.match(preflight.headers.get("access-control-allow-headers")!, /apikey/);
      assert.equal((await connectionState(db, bobRow)).status, "active");
    });

    await t.step("the project's secret API key disconnects any connection", async () => {
      const before = revokes();
      const byKey = await disconnect({ auth_settings_id: bobRow }, { apikey: SECRET_KEY });
      assert.deepEqual(byKey.body, { disconnected: true, mall_id: "dcbob", revoked: true });
      assert.equal((await connectionState(db, bobRow)).last_error_code, "DISCONNECTED_BY_APP");
      assert.equal(await lastEvent(bobRow), "disconnected:DISCONNECTED_BY_APP");

      const rotated = await connectMall(stack, "dcrotated");
      const byOtherKey = await disconnect({ mall_id: "dcrotated" }, asBearer(OTHER_SECRET_KEY));
      assert.equal(byOtherKey.body.revoked, true);
      assert.equal((await connectionState(db, rotated.id)).status, "disconnected");

      const legacy = await connectMall(stack, "dclegacy");
      const byServiceRole = await disconnect({ mall_id: "dclegacy" }, asBearer(SERVICE_ROLE_KEY));
      assert.equal(byServiceRole.body.revoked, true);
      assert.equal((await connectionState(db, legacy.id)).status, "disconnected");
      assert.equal(revokes(), before + 3);
    });

    await t.step(
      "the legacy key can be turned off, and the cron secret never counts as a key",
      async () => {
        const { id } = await connectMall(stack, "dcstrict");
        const strict = await stack.startFunctions({ CAFE24_ACCEPT_SERVICE_ROLE_KEY: "false" });
        const refused = await disconnect(
          { mall_id: "dcstrict" },
          asBearer(SERVICE_ROLE_KEY),
          strict,
        );
        assert.equal(refused.status, 401);

        const confused = await stack.startFunctions({
          SUPABASE_SECRET_KEYS: JSON.stringify({ default: CRON_SECRET }),
          SUPABASE_SERVICE_ROLE_KEY: CRON_SECRET,
        });
        for (const headers of [asBearer(CRON_SECRET), { apikey: CRON_SECRET }]) {
          assert.equal((await disconnect({ mall_id: "dcstrict" }, headers, confused)).status, 401);
        }
        assert.equal((await connectionState(db, id)).status, "active");

        const accepted = await disconnect({ mall_id: "dcstrict" }, { apikey: SECRET_KEY }, strict);
        assert.equal(accepted.status, 200);
      },
    );

    await t.step("a revoke that fails is reported; the tokens are removed anyway", async () => {
      const rejected = await connectMall(stack, "dcrejected");
      const wrongSecret = await stack.startFunctions({
        CAFE24_CLIENT_SECRET_KEY: "not-the-secret",
      });
      const answer = await disconnect(
        { mall_id: "dcrejected" },
        { apikey: SECRET_KEY },
        wrongSecret,
      );
      assert.deepEqual(answer.body, {
        disconnected: true,
        mall_id: "dcrejected",
        revoked: false,
        revoke_error: "REVOKE_REJECTED",
      });
      assert.equal((await cafe24Entry(db, rejected.id)).refresh_token, undefined);
      assert.equal(sandbox.liveRefreshToken("dcrejected"), rejected.refreshToken);

      const unreachable = await connectMall(stack, "dcoffline");
      const offline = await stack.startFunctions({
        CAFE24_API_BASE_URL: "http://127.0.0.1:9/{mall_id}",
      });
      const lost = await disconnect({ mall_id: "dcoffline" }, { apikey: SECRET_KEY }, offline);
      assert.equal(lost.body.revoke_error, "REVOKE_UNREACHABLE");
      assert.equal((await cafe24Entry(db, unreachable.id)).refresh_token, undefined);
      assert.equal((await connectionState(db, unreachable.id)).status, "disconnected");
    });

    await t.step("no token in any answer or log line", () => {
      const tokens = tokensSeen();
      assert.ok(tokens.length >= 10, `tokens were captured (${tokens.length})`);
      const visible = [...answers, ...stack.functions.output].join("\n");
      assert.ok(visible.includes("cafe24_disconnected"), "the disconnects were logged");
      for (const token of [...tokens, SECRET_KEY, OTHER_SECRET_KEY, SERVICE_ROLE_KEY]) {
        assert.ok(!visible.includes(token), "a token or key was exposed");
      }
    });
  } finally {
    await stack.stop();
    await auth.close();
  }
});
