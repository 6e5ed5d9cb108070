/**
 * What every measurement starts from: the bench's credentials, a throwaway PostgreSQL with
 * pg_stat_statements and a role of the functions' own, due connections seeded from the Cafe24
 * sandbox, the sandbox itself, and (with --tls) a throwaway CA and certificate.
 */
import { type Cafe24Sandbox, startCafe24Sandbox } from "../local/cafe24_sandbox.ts";
import { startTestDatabase, type TestDatabase } from "../local/postgres/database.ts";
import { loadConfig } from "../supabase/functions/_shared/platform/config.ts";
import { newTokenRing } from "../local/stack/token_ring.ts";
import type { BenchOptions } from "./options.ts";

export const CLIENT_ID = "bench-client-id";
export const CLIENT_SECRET = "bench-client-secret-0123456789";
export const CRON_SECRET = "bench-cron-secret-abcdefghijklmnop";
/**
 * One token key ring per bench process, for each of its throwaway databases: the functions
 * process of every measurement on a database reads what the earlier ones wrote there.
 */
export const BENCH_APP = {
  clientId: CLIENT_ID,
  clientSecret: CLIENT_SECRET,
  cronSecret: CRON_SECRET,
  tokenRing: newTokenRing("bench"),
};
/** The functions' own database role: pg_stat_statements counts its statements apart. */
export const FUNCTIONS_ROLE = "bench_functions";
/** The default per-run cap in supabase/functions/_shared/platform/config.ts, for comparison. */
export const CONFIG_DEFAULT_MAX_PER_RUN = (() => {
  const defaults = loadConfig({}, []);
  if (!defaults.ok) throw new Error("config defaults do not parse");
  return defaults.config.CAFE24_MAX_CONNECTIONS_PER_RUN;
})();
export const REFRESH_MARGIN = "30 minutes";

// ---------------------------------------------------------------------------------------------
// TLS: a throwaway CA and a certificate for 127.0.0.1
// ---------------------------------------------------------------------------------------------

export interface TlsMaterial {
  dir: string;
  caFile: string;
  caPem: string;
  cert: string;
  key: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    env: Deno.env.toObject(),
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(`openssl ${args[0]} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Null when openssl is not installed. The leaf is signed by a CA because rustls refuses a CA
 * certificate presented as the server's own. */
export async function makeTlsMaterial(): Promise<TlsMaterial | null> {
  const dir = await Deno.makeTempDir({ prefix: "bench-tls-" });
  try {
    await openssl([
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=refresh bench CA",
    ], dir);
    await openssl([
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "leaf.key",
      "-out",
      "leaf.csr",
      "-subj",
      "/CN=127.0.0.1",
    ], dir);
    await Deno.writeTextFile(
      `${dir}/leaf.ext`,
      "subjectAltName = IP:127.0.0.1, DNS:localhost\nbasicConstraints = CA:FALSE\n" +
        "keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n",
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      "leaf.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "leaf.pem",
      "-days",
      "2",
      "-extfile",
      "leaf.ext",
    ], dir);
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return {
    dir,
    caFile: `${dir}/ca.pem`,
    caPem: await Deno.readTextFile(`${dir}/ca.pem`),
    cert: await Deno.readTextFile(`${dir}/leaf.pem`),
    key: await Deno.readTextFile(`${dir}/leaf.key`),
  };
}

// ---------------------------------------------------------------------------------------------
// The Cafe24 sandbox and the database
// ---------------------------------------------------------------------------------------------

/** The sandbox every refresh measurement of one N talks to, with the flags' latency. */
export function startBenchSandbox(
  options: BenchOptions,
  tls: TlsMaterial | null,
): Promise<Cafe24Sandbox> {
  return startCafe24Sandbox({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    seed: 1,
    latencyMs: options.latencyMs,
    jitterMs: options.jitterMs,
    quiet: true,
    closeConnections: !options.keepAlive,
    ...(tls === null ? {} : { tls: { cert: tls.cert, key: tls.key } }),
  });
}

export async function startBenchDatabase(): Promise<TestDatabase> {
  const db = await startTestDatabase({
    preloadLibraries: ["pg_stat_statements"],
    // top: statements the client sent (round trips), not those run inside SQL functions.
    settings: { "pg_stat_statements.track": "top", "pg_stat_statements.max": 5000 },
  });
  await db.sql`create extension if not exists pg_stat_statements`;
  // The cluster's password (hex) for this role too: connections need one (scram-sha-256).
  await db.sql.unsafe(`create role ${FUNCTIONS_ROLE} login superuser password '${db.password}'`);
  return db;
}

const mallIdOf = (prefix: string, i: number) => `${prefix}${String(i).padStart(6, "0")}`;

/** N due connections (no expires_at: due now), tokens issued by the sandbox, in one insert. */
export async function seedConnections(db: TestDatabase, sandbox: Cafe24Sandbox, n: number) {
  const tokens: string[] = [];
  for (let i = 1; i <= n; i++) tokens.push(sandbox.issueTokens(mallIdOf("bench", i)).refreshToken);
  await db.sql`
    insert into public.auth_settings (org_id, user_id, providers)
    select gen_random_uuid(), gen_random_uuid(), jsonb_build_object(
      'cafe24', jsonb_build_object(
        'mall_id', 'bench' || lpad(i::text, 6, '0'),
        'refresh_token', (${tokens}::text[])[i],
        'access_token', md5(i::text),
        'scope', 'mall.read_store,mall.read_community',
        'shop_no', 1,
        'board_no', 3),
      'other_provider', jsonb_build_object('enabled', true, 'note', repeat('x', 200)))
    from generate_series(1, ${n}::int) as i`;
  await db.sql`vacuum analyze`;
}

/** Every connection due now: its access token's expiry forgotten (it lives in the private row). */
export async function makeAllDue(db: TestDatabase): Promise<void> {
  await db.sql`
    update cafe24_private.connections set access_expires_at = null, due_at = '-infinity'
    where row_state = 'ok'`;
  await db.sql`vacuum analyze`;
}
