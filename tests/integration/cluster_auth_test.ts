/**
 * Local clusters take connections only with their password (scram-sha-256): a user or program on
 * the same machine gets no superuser session by merely connecting to 127.0.0.1, and a kept
 * cluster created when everything was trusted gets a password the next time it starts.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startPostgresCluster } from "../../local/postgres/cluster.ts";

async function whoAmI(url: string): Promise<string> {
  const sql = postgres(url, { prepare: false, max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const [row] = await sql<{ user: string }[]>`select current_user as user`;
    return row!.user;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.toString();
}

Deno.test("a cluster answers only with its password, over scram-sha-256", async () => {
  const cluster = await startPostgresCluster();
  try {
    assert.match(cluster.password, /^[0-9a-f]{32}$/);
    assert.ok(cluster.dbUrl.includes(`:${cluster.password}@`));
    assert.equal(await whoAmI(cluster.dbUrl), "postgres");
    await assert.rejects(
      whoAmI(withPassword(cluster.dbUrl, "postgres")),
      /password authentication failed/,
    );
    await assert.rejects(whoAmI(withPassword(cluster.dbUrl, "")), /password|authentication/i);
    const hba = await Deno.readTextFile(`${cluster.dataDir}/pg_hba.conf`);
    const rules = hba.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
    assert.ok(rules.length >= 2);
    assert.ok(rules.every((line) => line.endsWith("scram-sha-256")), hba);
    const sql = postgres(cluster.dbUrl, { prepare: false, max: 1, onnotice: () => {} });
    try {
      const [role] = await sql<{ hash: string }[]>`
        select rolpassword as hash from pg_authid where rolname = 'postgres'`;
      assert.match(role!.hash, /^SCRAM-SHA-256\$/);
    } finally {
      await sql.end();
    }
  } finally {
    await cluster.stop();
  }
});

Deno.test("a kept cluster keeps its password across starts, and a trusting one gets one", async () => {
  const base = await Deno.makeTempDir({ prefix: "cluster-auth-" });
  try {
    // The cluster runs as the postgres OS user when the tests run as root.
    await Deno.chmod(base, 0o755);
    const dataDir = `${base}/data`;
    const first = await startPostgresCluster({ dataDir, keep: true });
    const password = first.password;
    await first.stop();
    const file = await Deno.stat(`${dataDir}/harness.password`);
    assert.equal(file.mode! & 0o777, 0o600);

    const second = await startPostgresCluster({ dataDir, keep: true });
    try {
      assert.equal(second.password, password);
      assert.equal(await whoAmI(second.dbUrl), "postgres");
    } finally {
      await second.stop();
    }

    // As a cluster made before passwords: everything trusted, no password file.
    await Deno.remove(`${dataDir}/harness.password`);
    await Deno.writeTextFile(`${dataDir}/pg_hba.conf`, "host all all 127.0.0.1/32 trust\n");
    const third = await startPostgresCluster({ dataDir, keep: true });
    try {
      assert.notEqual(third.password, password);
      assert.equal(await whoAmI(third.dbUrl), "postgres");
      await assert.rejects(
        whoAmI(withPassword(third.dbUrl, "anything")),
        /password authentication failed/,
      );
    } finally {
      await third.stop();
    }
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
