import assert from "node:assert/strict";
import {
  chooseClusterDir,
  fallbackClusterDir,
  type LocationFacts,
  prepareFallbackParent,
  removeClusterData,
} from "../../../local/stack/data_location.ts";

const facts = (overrides: Partial<LocationFacts>): LocationFacts => ({
  preferred: "/root/app/.local/postgres",
  fallback: "/var/tmp/cafe24-connector-0123456789ab/postgres",
  runsAsOtherUser: true,
  reachable: true,
  preferredHasCluster: false,
  fallbackHasCluster: false,
  ...overrides,
});

Deno.test("chooseClusterDir() keeps the cluster in the data dir when its OS user can reach it", () => {
  assert.deepEqual(chooseClusterDir(facts({})), { dir: "/root/app/.local/postgres", note: null });
  // Not root: the cluster runs as us, who can always reach our own checkout.
  assert.equal(
    chooseClusterDir(facts({ runsAsOtherUser: false, reachable: false })).dir,
    "/root/app/.local/postgres",
  );
});

Deno.test("chooseClusterDir() moves a new cluster out of a checkout under a private folder", () => {
  const location = chooseClusterDir(facts({ reachable: false }));
  assert.equal(location.dir, "/var/tmp/cafe24-connector-0123456789ab/postgres");
  assert.match(location.note!, /postgres OS user cannot enter/);
});

Deno.test("chooseClusterDir() never leaves an existing cluster behind", () => {
  // A cluster already in the data dir stays there, even if it has become unreachable.
  assert.equal(
    chooseClusterDir(
      facts({ reachable: false, preferredHasCluster: true, fallbackHasCluster: true }),
    )
      .dir,
    "/root/app/.local/postgres",
  );
  // One put outside earlier stays outside, even once the data dir is reachable.
  assert.equal(
    chooseClusterDir(facts({ reachable: true, fallbackHasCluster: true })).dir,
    "/var/tmp/cafe24-connector-0123456789ab/postgres",
  );
});

Deno.test("fallbackClusterDir() is stable per data dir and differs between data dirs", async () => {
  const a = await fallbackClusterDir("/root/one/.local");
  assert.equal(a, await fallbackClusterDir("/root/one/.local"));
  assert.notEqual(a, await fallbackClusterDir("/root/two/.local"));
  assert.match(a, /^\/var\/tmp\/cafe24-connector-[0-9a-f]{12}\/postgres$/);
  assert.match(await fallbackClusterDir("/x", "/tmp/base"), /^\/tmp\/base\/cafe24-connector-/);
});

Deno.test("prepareFallbackParent() makes a private folder and refuses one others could write", async () => {
  const base = await Deno.makeTempDir({ prefix: "fallback-" });
  const me = { uid: Deno.uid()!, gid: Deno.gid()! };
  try {
    const dir = `${base}/cafe24-connector-abc/postgres`;
    await prepareFallbackParent(dir, me);
    const info = await Deno.stat(`${base}/cafe24-connector-abc`);
    assert.ok(info.isDirectory);
    assert.equal(info.mode! & 0o777, 0o700);
    await prepareFallbackParent(dir, me); // again: already there and private

    const open = `${base}/cafe24-connector-open`;
    await Deno.mkdir(open);
    await Deno.chmod(open, 0o777);
    await assert.rejects(prepareFallbackParent(`${open}/postgres`, me), /not a private folder/);

    const link = `${base}/cafe24-connector-link`;
    await Deno.symlink(`${base}/cafe24-connector-abc`, link);
    await assert.rejects(prepareFallbackParent(`${link}/postgres`, me), /not a private folder/);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("removeClusterData() (--reset) removes the data dir's cluster and its /var/tmp folder", async () => {
  const base = await Deno.makeTempDir({ prefix: "reset-" });
  try {
    const dataDir = `${base}/.local`;
    const fallback = await fallbackClusterDir(dataDir, `${base}/var-tmp`);
    await Deno.mkdir(`${dataDir}/postgres`, { recursive: true });
    await Deno.mkdir(fallback, { recursive: true });
    await Deno.writeTextFile(`${fallback}/PG_VERSION`, "15");
    const removed = await removeClusterData(dataDir, fallback);
    assert.deepEqual(removed, [`${dataDir}/postgres`, fallback.replace(/\/postgres$/, "")]);
    assert.equal(await Deno.stat(fallback.replace(/\/postgres$/, "")).then(() => 1, () => 0), 0);
    assert.deepEqual(await removeClusterData(dataDir, fallback), [], "again: nothing left");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
