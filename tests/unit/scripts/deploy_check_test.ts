import assert from "node:assert/strict";
import { usageError } from "../../../local/stack/usage.ts";
import { newTokenRing } from "../../../local/stack/token_ring.ts";
import {
  connectionPlace,
  tokenSeal,
} from "../../../supabase/functions/_shared/platform/token_seal.ts";
import {
  authorizeWithoutUser,
  callbackWithoutState,
  CRON_JOBS,
  cronJobVerdict,
  databaseAdvice,
  jwksVerdict,
  legacyKeyVerdict,
  migrationsVerdict,
  missingSettingsMessage,
  queryFailedVerdict,
  refreshWithoutSecret,
  refreshWithSecret,
  tokenKeysVerdict,
  unreachableVerdict,
  vaultVerdict,
  webhookWithoutKey,
} from "../../../scripts/deploy_check.ts";

Deno.test("deploy:check reads the functions' answers: deployed, configured, verify_jwt off", () => {
  assert.equal(refreshWithoutSecret({ status: 401, body: { error: "UNAUTHORIZED" } }).ok, true);
  const notDeployed = refreshWithoutSecret({ status: 404, body: "Not Found" });
  assert.match(notDeployed.fix!, /functions deploy --use-api/);
  const noSecret = refreshWithoutSecret({
    status: 500,
    body: { error: "CRON_SECRET_NOT_CONFIGURED" },
  });
  assert.match(noSecret.fix!, /secrets set/);
  // The platform's own 401 (verify_jwt on) has another body.
  const platform = authorizeWithoutUser({
    status: 401,
    body: { code: 401, message: "Invalid JWT" },
  });
  assert.equal(platform.ok, false);
  assert.match(platform.fix!, /verify_jwt = false/);
  assert.equal(authorizeWithoutUser({ status: 401, body: { error: "UNAUTHORIZED" } }).ok, true);
  const missing = authorizeWithoutUser({
    status: 500,
    body: { error: "CONFIG_MISSING", missing: ["CAFE24_REDIRECT_URI"] },
  });
  assert.match(missing.detail, /CAFE24_REDIRECT_URI/);
  assert.equal(callbackWithoutState({ status: 302, body: "" }).ok, true);
  assert.equal(callbackWithoutState({ status: 502, body: "" }).ok, false);
});

Deno.test("deploy:check: a refresh with the secret must reach the database", () => {
  assert.equal(refreshWithSecret({ status: 200, body: { run_id: "r", scanned: 0 } }).ok, true);
  assert.match(
    refreshWithSecret({ status: 401, body: { error: "UNAUTHORIZED" } }).detail,
    /differs/,
  );
  assert.match(
    refreshWithSecret({ status: 500, body: { error: "REFRESH_RUN_FAILED" } }).fix!,
    /database/,
  );
});

Deno.test("deploy:check: the legacy HS256 secret is named, with how to switch", () => {
  assert.equal(
    jwksVerdict({ status: 200, body: { keys: [{ kty: "EC", alg: "ES256" }] } }).ok,
    true,
  );
  const legacy = jwksVerdict({ status: 200, body: { keys: [] } });
  assert.equal(legacy.ok, false);
  assert.match(legacy.detail, /legacy HS256/);
  assert.match(legacy.fix!, /JWT Keys/);
});

Deno.test("deploy:check: migrations, Vault values and database hints", () => {
  assert.equal(migrationsVerdict(["1", "2"], ["1", "2", "0"]).ok, true);
  assert.match(migrationsVerdict(["1", "2"], ["1"]).detail, /not applied: 2/);
  assert.equal(vaultVerdict("n", "abc", "abc", "CRON_SECRET").ok, true);
  const differs = vaultVerdict("cafe24_cron_secret", "abc", "abd", "CRON_SECRET");
  assert.equal(differs.ok, false);
  assert.ok(!differs.detail.includes("abc") && !differs.detail.includes("abd"), "no secret shown");
  assert.match(vaultVerdict("cafe24_project_url", null, "x", "SUPABASE_URL").detail, /no/);
  assert.match(
    databaseAdvice("postgresql://postgres:pw@db.abcdefgh.supabase.co:5432/postgres", "ENETUNREACH"),
    /pooler\.supabase\.com:5432/,
  );
});

Deno.test("deploy:check warns while the legacy service_role key is accepted next to secret keys", () => {
  const keys = '{"default":"sb_secret_example"}';
  // The default (unset) and an explicit true both still accept the legacy key: a warning, which
  // does not fail the check, with the setting that ends it.
  for (const accept of [undefined, "", "true", "1"]) {
    const env = { SUPABASE_SECRET_KEYS: keys, CAFE24_ACCEPT_SERVICE_ROLE_KEY: accept };
    const verdict = legacyKeyVerdict(env);
    assert.equal(verdict?.warning, true, `CAFE24_ACCEPT_SERVICE_ROLE_KEY=${accept}`);
    assert.equal(verdict?.ok, true);
    assert.match(verdict!.fix!, /CAFE24_ACCEPT_SERVICE_ROLE_KEY=false/);
    assert.ok(!JSON.stringify(verdict).includes("sb_secret_example"), "the key is never shown");
  }
  const off = legacyKeyVerdict({
    SUPABASE_SECRET_KEYS: keys,
    CAFE24_ACCEPT_SERVICE_ROLE_KEY: "false",
  });
  assert.deepEqual(off, { ok: true, detail: "only the keys of SUPABASE_SECRET_KEYS are accepted" });
  const invalid = legacyKeyVerdict({
    SUPABASE_SECRET_KEYS: keys,
    CAFE24_ACCEPT_SERVICE_ROLE_KEY: "maybe",
  });
  assert.equal(invalid?.ok, false);
  // Without secret keys there is nothing newer to prefer: no line at all.
  assert.equal(legacyKeyVerdict({}), null);
  assert.equal(
    legacyKeyVerdict({ SUPABASE_SECRET_KEYS: " ", CAFE24_ACCEPT_SERVICE_ROLE_KEY: "true" }),
    null,
  );
});

Deno.test("cafe24-webhook: a key set passes, a key unset passes with a warning", () => {
  const set = webhookWithoutKey({ status: 401, body: { error: "UNAUTHORIZED" } });
  assert.equal(set.ok, true);
  assert.ok(!set.detail.includes("WARNING"));
  const unset = webhookWithoutKey({ status: 200, body: { received: true } });
  assert.equal(unset.ok, true);
  assert.match(unset.detail, /WARNING CAFE24_WEBHOOK_API_KEY/);
  assert.equal(webhookWithoutKey({ status: 404, body: "" }).ok, false);
  assert.equal(webhookWithoutKey({ status: 401, body: { msg: "Invalid JWT" } }).ok, false);
});

Deno.test("deploy:check: a project that does not answer is named by each check, with its fix", () => {
  const dns = new TypeError("fetch failed", {
    cause: new Error(
      "error sending request for url (https://abc.supabase.co/functions/v1/cafe24-token): " +
        "client error (Connect): dns error: failed to lookup address information",
    ),
  });
  const verdict = unreachableVerdict("https://abc.supabase.co/functions/v1/cafe24-token", dns);
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /abc\.supabase\.co does not resolve/);
  assert.doesNotMatch(verdict.detail, /fetch failed/);
  assert.match(verdict.fix!, /SUPABASE_PROJECT_REF/);
  assert.doesNotMatch(verdict.fix!, /above/);
  const refused = unreachableVerdict(
    "http://127.0.0.1:54321/x",
    new TypeError("fetch failed", { cause: new Error("Connection refused (os error 111)") }),
  );
  assert.match(refused.detail, /nothing accepts connections at 127\.0\.0\.1:54321/);
  assert.match(refused.fix!, /npm start/);
  const timeout = unreachableVerdict(
    "https://abc.supabase.co/x",
    new DOMException("Signal timed out.", "TimeoutError"),
  );
  assert.match(timeout.detail, /within 30 s/);
  assert.match(
    databaseAdvice("postgresql://p@nohost.pooler.supabase.com:5432/postgres", "ENOTFOUND"),
    /nohost\.pooler\.supabase\.com does not resolve/,
  );
  assert.match(queryFailedVerdict(new Error('relation "x" does not exist')).fix!, /db push/);
});

Deno.test("deploy:check probes cafe24-webhook and every pg_cron job of the migrations", async () => {
  assert.equal(webhookWithoutKey({ status: 200, body: { received: true } }).ok, true);
  assert.equal(webhookWithoutKey({ status: 404, body: "Not Found" }).ok, false);
  assert.match(
    webhookWithoutKey({ status: 401, body: { code: 401, message: "Invalid JWT" } }).fix!,
    /verify_jwt/,
  );
  // Every job a migration schedules, by its exact name and command.
  const scheduled = new Map<string, string>();
  for await (
    const entry of Deno.readDir(new URL("../../../supabase/migrations/", import.meta.url))
  ) {
    if (!entry.name.endsWith(".sql")) continue;
    const text = await Deno.readTextFile(
      new URL(`../../../supabase/migrations/${entry.name}`, import.meta.url),
    );
    for (const m of text.matchAll(/cron\.schedule\('([^']+)',\s*[^,]+,\s*'([^']+)'\)/g)) {
      scheduled.set(m[1]!, m[2]!);
    }
  }
  assert.deepEqual(
    new Map(CRON_JOBS.map((job) => [job.name, job.command])),
    scheduled,
  );
  for (
    const name of [
      "cafe24-refresh",
      "cafe24-events",
      "cafe24-trim-histories",
      "cafe24-oauth-states-cleanup",
    ]
  ) assert.ok(scheduled.has(name), name);
  const events = CRON_JOBS.find((job) => job.name === "cafe24-events")!;
  const row = {
    jobname: "cafe24-events",
    schedule: "* * * * *",
    command: events.command,
    active: true,
    last_status: "succeeded",
    last_message: null,
  };
  assert.equal(cronJobVerdict(events, row).ok, true);
  assert.match(cronJobVerdict(events, undefined).fix!, /db push/);
  assert.match(cronJobVerdict(events, { ...row, active: false }).fix!, /active = true/);
  assert.equal(cronJobVerdict(events, { ...row, last_status: "failed" }).ok, false);
});

Deno.test("deploy:check with nothing set suggests --local; usage errors come last", () => {
  const message = missingSettingsMessage(["CRON_SECRET"], "/x/.env.production", false);
  assert.match(message, /npm run deploy:check -- --local/);
  assert.match(message, /create \/x\/\.env\.production/);
  const lines = usageError("npm run deploy:check", "Unknown option '--bogus'").split("\n");
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^npm run deploy:check: Unknown option '--bogus' .*--help/);
  assert.match(vaultVerdict("cafe24_cron_secret", null, "x", "CRON_SECRET").fix!, /deploy:vault/);
});

Deno.test("token keys: every key in use is in the ring and opens its values", async () => {
  const ringA = newTokenRing();
  const fresh = newTokenRing();
  const keyB = JSON.parse(fresh.CAFE24_TOKEN_KEYS)[fresh.CAFE24_TOKEN_KEY_ID];
  const ringB = {
    CAFE24_TOKEN_KEYS: JSON.stringify({ other: keyB }),
    CAFE24_TOKEN_KEY_ID: "other",
  };
  const kidA = ringA.CAFE24_TOKEN_KEY_ID;
  const id = "00000000-0000-4000-8000-000000000001";
  const sealedA = await tokenSeal(ringA.CAFE24_TOKEN_KEYS, kidA).seal(
    connectionPlace(id),
    "refresh_token",
    "rt-live",
  );
  const inUse = [{ kid: kidA, connections: 3, auth_settings_id: id, refresh_token: sealedA }];

  const good = await tokenKeysVerdict(inUse, ringA);
  assert.equal(good.ok, true);
  assert.equal(good.warning, undefined);
  assert.match(good.detail, new RegExp(`${kidA} 3`));

  const lacking = await tokenKeysVerdict(inUse, ringB);
  assert.equal(lacking.ok, false);
  assert.match(lacking.detail, new RegExp(`the ring lacks ${kidA}`));

  // The same key id with other key material: the value does not open.
  const otherMaterial = { ...ringB, CAFE24_TOKEN_KEY_ID: kidA };
  otherMaterial.CAFE24_TOKEN_KEYS = JSON.stringify({ [kidA]: keyB });
  const wrong = await tokenKeysVerdict(inUse, otherMaterial);
  assert.equal(wrong.ok, false);
  assert.match(wrong.detail, /does not open/);

  const moved = await tokenKeysVerdict(
    [{ ...inUse[0]!, auth_settings_id: "00000000-0000-4000-8000-000000000002" }],
    ringA,
  );
  assert.equal(moved.ok, false, "a value moved to another row does not open");

  const legacy = await tokenKeysVerdict(
    [...inUse, { kid: "plaintext", connections: 2, auth_settings_id: id, refresh_token: "x" }],
    ringA,
  );
  assert.equal(legacy.ok, true);
  assert.equal(legacy.warning, true);

  const noRing = await tokenKeysVerdict(inUse, {});
  assert.equal(noRing.warning, true);
  assert.match(noRing.fix!, /copy of CAFE24_TOKEN_KEYS/);
});

Deno.test("token keys: a dotted value that is not sealed fails the check", async () => {
  const ring = newTokenRing();
  const verdict = await tokenKeysVerdict([{
    kid: "unreadable",
    connections: 1,
    auth_settings_id: "00000000-0000-4000-8000-000000000001",
    refresh_token: "V1.x.y",
  }], ring);
  assert.equal(verdict.ok, false);
  assert.match(verdict.detail, /neither sealed nor a token/);
});
