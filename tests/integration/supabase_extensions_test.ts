/**
 * Vault and pg_net: the real extensions where the PostgreSQL installation ships them, stand-ins
 * elsewhere (local/supabase/stand_ins.sql decides), and pg_net's behaviour that the stand-in
 * reproduces. The behaviour steps hold for both: run this file once as it is (stand-ins) and once
 * with PG_BINDIR pointing at an installation that has pg_net and supabase_vault (the real ones),
 * and the same assertions pass — that is what keeps the stand-in faithful.
 *
 *   node_modules/.bin/deno test --allow-all tests/integration/supabase_extensions_test.ts
 */
import assert from "node:assert/strict";
import type postgres from "postgres";
import {
  applyStandIns,
  realExtensions,
  startTestDatabase,
  type TestDatabase,
} from "../../local/postgres/database.ts";
import { installedSupabaseLibraries } from "../../local/postgres/cluster.ts";
import { type NetDeliverer, startNetDeliverer } from "../../local/supabase/pg_net_deliverer.ts";

/** One request as it arrived on the wire: header lines exactly as sent. */
interface WireRequest {
  port: number;
  method: string;
  target: string;
  headerLines: string[];
  body: string;
}

/**
 * A raw HTTP/1.1 server, so that the test sees header lines as the client wrote them and answers
 * with header names in the case it chooses (Deno.serve would normalize both). Routes:
 * /redirect?code=N&to=URL, /empty, /dup, /chunked, /nul, /slow?ms=N, anything else a JSON 200.
 */
function startWireServer() {
  const requests: WireRequest[] = [];
  const listeners = [0, 1].map(() => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  const conns = new Set<Deno.Conn>();
  const answer = async (path: string): Promise<string> => {
    const url = new URL(path, "http://x");
    if (url.pathname === "/redirect") {
      return `HTTP/1.1 ${url.searchParams.get("code")} Moved\r\n` +
        `Location: ${url.searchParams.get("to")}\r\nX-Hop: First\r\nContent-Length: 5\r\n\r\nmoved`;
    }
    if (url.pathname === "/empty") {
      return "HTTP/1.1 200 OK\r\nX-Mixed-Case: Yes\r\nContent-Length: 0\r\n\r\n";
    }
    if (url.pathname === "/dup") {
      return "HTTP/1.1 200 OK\r\nX-Dup: one\r\nX-Dup: two\r\nContent-Type: text/plain\r\n" +
        "Content-Length: 2\r\n\r\nok";
    }
    if (url.pathname === "/chunked") {
      return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n" +
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    }
    if (url.pathname === "/nul") return "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab\0cd";
    if (url.pathname === "/slow") {
      await new Promise((r) => setTimeout(r, Number(url.searchParams.get("ms"))));
    }
    const body = JSON.stringify({ final: url.pathname });
    return `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Final: Yes\r\n` +
      `Content-Length: ${body.length}\r\n\r\n${body}`;
  };
  const serve = async (conn: Deno.Conn, port: number) => {
    conns.add(conn);
    const decoder = new TextDecoder();
    let data = "";
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(chunk);
        if (n === null) return;
        data += decoder.decode(chunk.subarray(0, n), { stream: true });
        for (;;) {
          const end = data.indexOf("\r\n\r\n");
          if (end < 0) break;
          const [requestLine, ...headerLines] = data.slice(0, end).split("\r\n");
          const length = Number(
            headerLines.find((l) => /^content-length:/i.test(l))?.split(":")[1] ?? 0,
          );
          if (data.length < end + 4 + length) break;
          const [method, target] = requestLine!.split(" ");
          requests.push({
            port,
            method: method!,
            target: target!,
            headerLines,
            body: data.slice(end + 4, end + 4 + length),
          });
          data = data.slice(end + 4 + length);
          await conn.write(new TextEncoder().encode(await answer(target!)));
        }
      }
    } catch {
      // the client went away
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const loops = listeners.map(async (listener, i) => {
    try {
      for await (const conn of listener) serve(conn, ports[i]!);
    } catch { /* closed */ }
  });
  return {
    requests,
    base: `http://127.0.0.1:${ports[0]}`,
    other: `http://127.0.0.1:${ports[1]}`,
    /** Requests whose target starts with `prefix`. */
    to: (prefix: string) => requests.filter((r) => r.target.startsWith(prefix)),
    async close() {
      for (const l of listeners) l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await Promise.all(loops);
    },
  };
}

interface ResponseRow {
  id: string;
  status_code: number | null;
  content_type: string | null;
  headers: Record<string, string> | null;
  content: string | null;
  timed_out: boolean | null;
  error_msg: string | null;
  created: Date;
}

async function responseOf(sql: postgres.Sql, id: string): Promise<ResponseRow> {
  const [row] = await sql<ResponseRow[]>`
    select id::text as id, status_code, content_type, headers, content, timed_out, error_msg,
      created
    from net._http_response where id = ${id}::bigint`;
  if (row === undefined) throw new Error(`no response row for request ${id}`);
  return row;
}

function headerNames(lines: string[]): string[] {
  return lines.map((l) => l.slice(0, l.indexOf(":")));
}

function header(lines: string[], name: string): string | undefined {
  const line = lines.find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line === undefined ? undefined : line.slice(line.indexOf(":") + 1).trim();
}

const SHIPS_BOTH = (await installedSupabaseLibraries()).length === 2;

Deno.test("Vault and pg_net, real or stand-in", async (t) => {
  const db = await startTestDatabase();
  const deliverer = startNetDeliverer(db.dbUrl, { pollIntervalMs: 50 });
  try {
    await t.step("the real extension where the server ships it, else a stand-in", async () => {
      await decision(db, deliverer);
    });
    await t.step("pg_net behaviour the stand-in reproduces", async (t) => {
      await pgNetBehaviour(t, db, deliverer);
    });
    await t.step("Vault: without EXECUTE on the decrypt function, no secret", async () => {
      await vaultDecryptGrant(db);
    });
    await t.step({
      name: "a kept database from the plain-text Vault stand-in keeps its secrets",
      ignore: SHIPS_BOTH,
      fn: () => plainTextStandInUpgrade(db),
    });
    await t.step({
      name: "a kept database moves from stand-ins to the real extensions with its secrets",
      // Needs an installation with both extensions (PG_BINDIR); the stand-in path never meets it.
      ignore: !SHIPS_BOTH,
      fn: () => standInsToRealExtensions(db),
    });
  } finally {
    await deliverer.stop();
    await db.stop();
  }
});

async function decision(db: TestDatabase, deliverer: NetDeliverer): Promise<void> {
  const [state] = await db.sql<Record<string, boolean>[]>`
    select
      exists (select from pg_available_extensions where name = 'pg_net') as pg_net_available,
      exists (select from pg_available_extensions where name = 'supabase_vault')
        as vault_available,
      exists (
        select from pg_depend d join pg_extension e on e.oid = d.refobjid
        where d.classid = 'pg_namespace'::regclass and d.objid = 'net'::regnamespace
          and d.deptype = 'e' and e.extname = 'pg_net'
      ) as net_schema_is_pg_nets,
      exists (
        select from pg_depend d join pg_extension e on e.oid = d.refobjid
        where d.classid = 'pg_class'::regclass and d.objid = 'vault.secrets'::regclass
          and d.deptype = 'e' and e.extname = 'supabase_vault'
      ) as secrets_are_vaults,
      current_setting('shared_preload_libraries') like '%pg_net%' as pg_net_preloaded,
      current_setting('shared_preload_libraries') like '%supabase_vault%' as vault_preloaded`;
  const real = await realExtensions(db.sql);
  assert.deepEqual(real, { pgNet: state!.pg_net_available, vault: state!.vault_available });
  assert.equal(SHIPS_BOTH, real.pgNet && real.vault);
  // Never a mix: the objects are the extension's own, or there is no extension.
  assert.equal(state!.net_schema_is_pg_nets, real.pgNet);
  assert.equal(state!.secrets_are_vaults, real.vault);
  assert.equal(state!.pg_net_preloaded, real.pgNet);
  assert.equal(state!.vault_preloaded, real.vault);
  assert.equal(await deliverer.worker(), real.pgNet ? "pg_net" : "stand-in");
  if (real.pgNet) {
    const [worker] = await db.sql`
      select 1 from pg_stat_activity where backend_type ilike '%pg_net%'`;
    assert.ok(worker, "pg_net's background worker runs");
  }
}

async function pgNetBehaviour(
  t: Deno.TestContext,
  db: TestDatabase,
  deliverer: NetDeliverer,
): Promise<void> {
  const sql = db.sql;
  const server = startWireServer();
  const post = async (url: string, headers: Record<string, string>, body: postgres.JSONValue) => {
    const [row] = await sql<{ id: string }[]>`
      select net.http_post(${url}, ${sql.json(body)}, headers := ${sql.json(headers)})::text as id`;
    return row!.id;
  };
  const get = async (url: string, timeoutMs = 5000) => {
    const [row] = await sql<{ id: string }[]>`
      select net.http_get(${url}, timeout_milliseconds := ${timeoutMs})::text as id`;
    return row!.id;
  };
  const secretHeaders = {
    "Content-Type": "application/json",
    "x-cron-secret": "wire-secret",
    "Authorization": "Bearer wire-token",
  };
  try {
    await t.step(
      "request headers: as written, in libcurl's order; blank ones left out",
      async () => {
        const headers = { ...secretHeaders, "X-Camel-Case": "Yes", "X-Blank": "" };
        await post(`${server.base}/plain`, headers, { n: 1 });
        await deliverer.drain();
        const [got] = server.to("/plain");
        assert.ok(got);
        assert.equal(got.method, "POST");
        assert.deepEqual(headerNames(got.headerLines), [
          "Host",
          "Accept",
          // The jsonb's key order (shorter keys first, then bytewise), names as given.
          "Content-Type",
          "X-Camel-Case",
          "Authorization",
          "x-cron-secret",
          "User-Agent",
          "Content-Length",
        ]);
        assert.equal(header(got.headerLines, "Accept"), "*/*");
        assert.match(header(got.headerLines, "User-Agent")!, /^pg_net\/0\.20/);
        assert.equal(got.body, '{"n": 1}'); // jsonb's text form
      },
    );

    for (const code of [301, 302, 303]) {
      await t.step(
        `${code}: the POST becomes a GET without body; every header goes again`,
        async () => {
          const target = `/after-${code}`;
          const id = await post(
            `${server.base}/redirect?code=${code}&to=${encodeURIComponent(target)}`,
            secretHeaders,
            { n: 1 },
          );
          await deliverer.drain();
          const [followed] = server.to(target);
          assert.ok(followed, "the redirect was followed");
          assert.equal(followed.method, "GET");
          assert.equal(followed.body, "");
          assert.equal(header(followed.headerLines, "Content-Length"), undefined);
          assert.equal(header(followed.headerLines, "x-cron-secret"), "wire-secret");
          assert.equal(header(followed.headerLines, "Authorization"), "Bearer wire-token");
          assert.equal(header(followed.headerLines, "Content-Type"), "application/json");
          const row = await responseOf(sql, id);
          assert.equal(row.status_code, 200, "the final status");
          assert.equal(row.content, JSON.stringify({ final: target }));
          assert.equal(row.content_type, "application/json", "the final response's type");
          // …but the headers are the FIRST response's: the redirect's.
          assert.equal(row.headers?.["X-Hop"], "First");
          assert.equal(row.headers?.["Location"], target);
          assert.equal(row.headers?.["X-Final"], undefined);
        },
      );
    }

    for (const code of [307, 308]) {
      await t.step(`${code}: method and body go to the new location`, async () => {
        const target = `/after-${code}`;
        const id = await post(
          `${server.base}/redirect?code=${code}&to=${encodeURIComponent(target)}`,
          secretHeaders,
          { kept: true },
        );
        await deliverer.drain();
        const [followed] = server.to(target);
        assert.equal(followed?.method, "POST");
        assert.equal(followed?.body, '{"kept": true}');
        assert.equal((await responseOf(sql, id)).status_code, 200);
      });
    }

    await t.step("another origin gets the secret header again, but not Authorization", async () => {
      const target = `${server.other}/elsewhere`;
      await post(
        `${server.base}/redirect?code=302&to=${encodeURIComponent(target)}`,
        secretHeaders,
        { n: 1 },
      );
      await deliverer.drain();
      const [followed] = server.to("/elsewhere");
      assert.ok(followed);
      assert.equal(header(followed.headerLines, "x-cron-secret"), "wire-secret");
      assert.equal(header(followed.headerLines, "Authorization"), undefined);
    });

    await t.step("a redirect to another scheme is an error", async () => {
      const id = await get(`${server.base}/redirect?code=302&to=${encodeURIComponent("ftp://x/")}`);
      await deliverer.drain();
      const row = await responseOf(sql, id);
      assert.deepEqual([row.status_code, row.timed_out, row.error_msg], [
        null,
        false,
        "Unsupported protocol",
      ]);
    });

    await t.step("response headers keep their case; the last duplicate wins", async () => {
      const empty = await get(`${server.base}/empty`);
      const dup = await get(`${server.base}/dup`);
      await deliverer.drain();
      const emptyRow = await responseOf(sql, empty);
      assert.equal(emptyRow.headers?.["X-Mixed-Case"], "Yes");
      assert.equal(emptyRow.headers?.["x-mixed-case"], undefined);
      const dupRow = await responseOf(sql, dup);
      assert.equal(dupRow.headers?.["X-Dup"], "two");
      assert.equal(dupRow.content_type, "text/plain");
    });

    await t.step("content: NULL when empty, cut at a NUL byte, chunks joined", async () => {
      const empty = await get(`${server.base}/empty`);
      const nul = await get(`${server.base}/nul`);
      const chunked = await get(`${server.base}/chunked`);
      await deliverer.drain();
      const rows = await Promise.all([empty, nul, chunked].map((id) => responseOf(sql, id)));
      assert.deepEqual(rows.map((r) => [r.status_code, r.content]), [
        [200, null],
        [200, "ab"],
        [200, "abcde"],
      ]);
      assert.equal(rows[0]!.content_type, null);
    });

    await t.step(
      "a batch commits at once: one `created`, the fast waits for the slow",
      async () => {
        const ids = await sql.begin(async (tx) => {
          const [fast] = await tx<{ id: string }[]>`
          select net.http_get(${server.base + "/fast"})::text as id`;
          const [slow] = await tx<{ id: string }[]>`
          select net.http_get(${server.base + "/slow?ms=700"})::text as id`;
          return [fast!.id, slow!.id];
        });
        // Wait for the first of the two to become visible, without drain(): it sees both or none.
        const deadline = Date.now() + 10_000;
        let seen: { id: string; created: Date }[] = [];
        while (seen.length === 0) {
          if (Date.now() > deadline) throw new Error("no response within 10 s");
          seen = await sql<{ id: string; created: Date }[]>`
          select id::text as id, created from net._http_response where id = any(${ids}::bigint[])`;
          if (seen.length === 0) await new Promise((r) => setTimeout(r, 20));
        }
        assert.equal(seen.length, 2, "the fast answer appeared together with the slow one");
        assert.equal(seen[0]!.created.getTime(), seen[1]!.created.getTime());
      },
    );

    await t.step("failures carry libcurl's messages", async () => {
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (closed.addr as Deno.NetAddr).port;
      closed.close();
      const refused = await get(`http://127.0.0.1:${port}/nobody`);
      const slow = await get(`${server.base}/slow?ms=2000`, 300);
      await deliverer.drain();
      assert.deepEqual(
        { ...(await responseOf(sql, refused)), created: null, id: null },
        {
          id: null,
          status_code: null,
          content_type: null,
          headers: null,
          content: null,
          timed_out: false,
          error_msg: "Couldn't connect to server",
          created: null,
        },
      );
      const timedOut = await responseOf(sql, slow);
      assert.equal(timedOut.timed_out, true);
      assert.equal(timedOut.status_code, null);
      assert.match(
        timedOut.error_msg!,
        /^Timeout of 300 ms reached\. Total time: [\d.]+ ms \(DNS time: [\d.]+ ms, TCP\/SSL handshake time: -?[\d.]+ ms, HTTP Request\/Response time: [\d.]+ ms\)$/,
      );
    });
  } finally {
    await server.close();
  }
}

async function vaultDecryptGrant(db: TestDatabase): Promise<void> {
  await db.sql`select vault.create_secret('the value', 'permission_probe')`;
  const read = (grantDecrypt: boolean) =>
    db.sql.begin(async (tx) => {
      await tx`create role vault_reader nologin`;
      // Everything Supabase grants a reader but the decrypt function itself.
      await tx`grant usage on schema vault to vault_reader`;
      await tx`grant select on vault.decrypted_secrets to vault_reader`;
      if (grantDecrypt) {
        await tx`grant execute on function
          vault._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea) to vault_reader`;
      }
      await tx`set local role vault_reader`;
      const [row] = await tx<{ value: string }[]>`
        select decrypted_secret as value from vault.decrypted_secrets
        where name = 'permission_probe'`;
      await tx`reset role`;
      await tx`drop owned by vault_reader`;
      await tx`drop role vault_reader`;
      return row?.value;
    });
  await assert.rejects(read(false), /permission denied for function _crypto_aead_det_decrypt/);
  assert.equal(await read(true), "the value");
}

async function plainTextStandInUpgrade(db: TestDatabase): Promise<void> {
  // The earlier stand-in: the view copied `secret`, which held the plain text.
  await db.sql.unsafe(`
    drop view vault.decrypted_secrets;
    create view vault.decrypted_secrets as
      select s.id, s.name, s.description, s.secret, s.secret as decrypted_secret, s.key_id,
        s.nonce, s.created_at, s.updated_at
      from vault.secrets s;
    insert into vault.secrets (name, secret) values ('cafe24_project_url', 'http://kept');
  `).simple();
  await applyStandIns(db.sql);
  const [kept] = await db.sql`
    select decrypted_secret, secret <> decrypted_secret as encoded
    from vault.decrypted_secrets where name = 'cafe24_project_url'`;
  assert.deepEqual({ ...kept }, { decrypted_secret: "http://kept", encoded: true });
}

async function standInsToRealExtensions(db: TestDatabase): Promise<void> {
  // What an earlier stand-in left in a kept database, in place of the real extensions.
  await db.sql.unsafe(`
    drop extension pg_net cascade;
    create schema net;
    create unlogged table net.http_request_queue (id bigserial, url text);
    drop extension supabase_vault cascade;
    drop schema if exists vault cascade;
    create schema vault;
    create table vault.secrets (
      id uuid primary key default gen_random_uuid(), name text,
      description text not null default '', secret text not null);
    create view vault.decrypted_secrets as
      select id, name, description, secret, secret as decrypted_secret from vault.secrets;
    insert into vault.secrets (name, description, secret)
      values ('cafe24_cron_secret', 'kept', 'kept-value');
  `).simple();
  await applyStandIns(db.sql);
  assert.deepEqual(await realExtensions(db.sql), { pgNet: true, vault: true });
  const [kept] = await db.sql`
    select description, decrypted_secret, secret <> decrypted_secret as encrypted
    from vault.decrypted_secrets where name = 'cafe24_cron_secret'`;
  assert.deepEqual({ ...kept }, {
    description: "kept",
    decrypted_secret: "kept-value",
    encrypted: true,
  });
  const [queue] = await db.sql`
    select count(*)::int as n from information_schema.columns
    where table_schema = 'net' and table_name = 'http_request_queue'`;
  assert.equal(queue?.n, 6, "pg_net's own queue table");
}
