/**
 * Finding 11: Cafe24 may list `mall.read_X` beside a requested `mall.write_X` (unconfirmed). A
 * connect accepts that one case, stores the scopes as returned, and still refuses any other scope
 * not requested. The sandbox models both answers (`write_scope_grants_read`).
 */
import assert from "node:assert/strict";
import { startTestAuth } from "../../support/auth.ts";
import { browser } from "../../support/connect.ts";
import { cafe24Entry, connectStackOptions, startRefreshStack } from "../../support/stack.ts";

export async function finding11(t: Deno.TestContext): Promise<void> {
  const auth = await startTestAuth();
  const options = connectStackOptions(auth);
  const stack = await startRefreshStack({
    ...options,
    env: { ...options.env, CAFE24_SCOPES: "mall.read_store,mall.write_product" },
  });
  try {
    const user = crypto.randomUUID();
    const jwt = await auth.mint({ sub: user });
    const at = browser(stack);
    for (const mall of ["shopwrite", "shopplain", "shopwiden"]) {
      stack.sandbox.addMall(mall, { scopes: ["mall.read_store", "mall.write_product"] });
    }

    await t.step(
      "write scope answered with its read scope too: connected, scopes as returned",
      async () => {
        stack.sandbox.configure({ writeScopeGrantsRead: true });
        const connected = await at.connect(jwt, "shopwrite");
        assert.equal(connected.status, 200, JSON.stringify(connected.body));
        const [row] = await stack.db.sql<{ id: string }[]>`
        select auth_settings_id as id from cafe24_private.connections where mall_id = 'shopwrite'`;
        const entry = await cafe24Entry(stack.db, row!.id);
        assert.deepEqual(
          [...(entry.scopes as string[])].sort(),
          ["mall.read_product", "mall.read_store", "mall.write_product"],
        );
      },
    );

    await t.step("the answer without it works the same", async () => {
      stack.sandbox.configure({ writeScopeGrantsRead: false });
      const connected = await at.connect(jwt, "shopplain");
      assert.equal(connected.status, 200, JSON.stringify(connected.body));
    });

    await t.step(
      "a scope nobody asked for is still refused, even beside the read case",
      async () => {
        stack.sandbox.configure({ writeScopeGrantsRead: true });
        const started = await at.get(
          `${stack.functions.url}/cafe24-authorize?mall_id=shopwiden&mode=json`,
          { headers: { authorization: `Bearer ${jwt}` } },
        );
        const url = new URL(JSON.parse(started.body).url);
        // Widened by hand at Cafe24's link, as an attacker would.
        url.searchParams.set("scope", `${url.searchParams.get("scope")},mall.write_order`);
        const atCafe24 = await at.get(url);
        assert.equal(atCafe24.status, 302, atCafe24.body);
        const { query, fragment } = await at.callback(new URL(atCafe24.location!));
        assert.equal(query.get("reason"), "SCOPE_NOT_REQUESTED");
        assert.equal(fragment.get("handle"), null);
      },
    );
  } finally {
    await stack.stop();
    await auth.close();
  }
}
