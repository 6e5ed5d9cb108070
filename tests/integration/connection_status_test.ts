/**
 * cafe24_private.connection_status says what each row is, as public.cafe24_connections does: a
 * malformed row is 'malformed' (it kept the refresh status 'active' before), a disconnected one
 * 'disconnected' with its reason, one without credentials 'not_connected'. The local stack's
 * table reads it (local/stack/report.ts).
 */
import assert from "node:assert/strict";
import { startTestDatabase } from "../../local/postgres/database.ts";
import { readConnections } from "../../local/stack/report.ts";

Deno.test("connection_status: malformed, disconnected and not_connected rows say so", async () => {
  const db = await startTestDatabase();
  try {
    const insert = async (providers: unknown) => {
      const [row] = await db.sql<{ id: string }[]>`
        insert into public.auth_settings (user_id, providers)
        values (gen_random_uuid(), ${db.sql.json(providers as never)}) returning id`;
      return row!.id;
    };
    const expires = new Date(Date.now() + 3_600_000).toISOString();
    const ok = await insert({
      cafe24: {
        mall_id: "shopok",
        refresh_token: "rt-ok",
        access_token: "at",
        expires_at: expires,
      },
    });
    const malformed = await insert({ cafe24: { mall_id: "shopbad", refresh_token: 7 } });
    const missing = await insert({ cafe24: { mall_id: "shopnone" } });
    const gone = await insert({
      cafe24: {
        mall_id: "shopgone",
        refresh_token: "rt-g",
        access_token: "at",
        expires_at: expires,
      },
    });
    await db
      .sql`select cafe24_private.disconnect_connection(${gone}::uuid, 'DISCONNECTED_BY_USER')`;

    const status = new Map(
      (await db.sql<{ id: string; row_state: string; status: string; code: string | null }[]>`
        select auth_settings_id as id, row_state, status, last_error_code as code
        from cafe24_private.connection_status`).map((r) => [r.id, r]),
    );
    assert.equal(status.get(ok)!.status, "active");
    assert.equal(status.get(malformed)!.status, "malformed");
    assert.equal(status.get(missing)!.status, "not_connected");
    assert.equal(status.get(gone)!.status, "disconnected");
    assert.equal(status.get(gone)!.code, "DISCONNECTED_BY_USER");

    // The operations guide's "what needs attention" query names the malformed row as malformed.
    const attention = await db.sql<{ id: string; status: string }[]>`
      select auth_settings_id as id, mall_id, user_id, status, last_error_code, last_error_at
      from cafe24_private.connection_status
      where status = 'reconnect_required' or row_state <> 'ok' or consecutive_failures > 0`;
    assert.equal(attention.find((r) => r.id === malformed)?.status, "malformed");
    assert.ok(!attention.some((r) => r.status === "active"));

    const rows = await readConnections(db.sql);
    assert.equal(rows.find((r) => r.auth_settings_id === gone)?.status, "disconnected");
  } finally {
    await db.stop();
  }
});
