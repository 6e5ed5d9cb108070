import assert from "node:assert/strict";
import {
  AUTHORIZE_CONFIG_REQUIRED,
  CALLBACK_CONFIG_REQUIRED,
  type Config,
  configRules,
  configWarnings,
  FUNCTION_SETTINGS,
  LEASE_SLACK_MS,
  loadConfig,
  REFRESH_CONFIG_REQUIRED,
  refreshSettings,
  tokenKeyWarnings,
} from "../../../supabase/functions/_shared/platform/config.ts";
import { SECRET_MIN_LENGTH } from "../../../supabase/functions/_shared/platform/secrets.ts";
import { CONFIG_WARNINGS } from "../../../supabase/functions/_shared/platform/errors.ts";

type RefreshName = (typeof REFRESH_CONFIG_REQUIRED)[number];

const REFRESH_ENV = {
  SUPABASE_DB_URL: "postgres://postgres:postgres@127.0.0.1:54322/postgres",
  CAFE24_CLIENT_ID: "my_client_id",
  CAFE24_CLIENT_SECRET_KEY: "my_secret_key",
};

function refreshConfig(extra: Record<string, string | undefined> = {}): Config<RefreshName> {
  const result = loadConfig({ ...REFRESH_ENV, ...extra }, REFRESH_CONFIG_REQUIRED);
  if (!result.ok) assert.fail(`expected a config, got ${result.code} ${result.rules.join("; ")}`);
  return result.config;
}

Deno.test("loadConfig() lists every missing required name at once, sorted", () => {
  const result = loadConfig({}, ["SUPABASE_DB_URL", "CRON_SECRET", "CAFE24_CLIENT_ID"]);
  assert.deepEqual(result, {
    ok: false,
    code: "CONFIG_MISSING",
    names: ["CAFE24_CLIENT_ID", "CRON_SECRET", "SUPABASE_DB_URL"],
    rules: [
      "CAFE24_CLIENT_ID must be set to the app's client ID from Cafe24 Developers",
      "CRON_SECRET must be set to a secret of at least 32 characters (openssl rand -base64 32)",
      "SUPABASE_DB_URL must be set to a postgresql:// URL of the database (injected by Supabase)",
    ],
  });
});

Deno.test("loadConfig() counts empty strings and undefined as missing", () => {
  const result = loadConfig(
    { CRON_SECRET: "", CAFE24_CLIENT_ID: "my_client_id", SUPABASE_DB_URL: undefined },
    ["SUPABASE_DB_URL", "CRON_SECRET", "CAFE24_CLIENT_ID"],
  );
  assert.ok(!result.ok);
  assert.equal(result.code, "CONFIG_MISSING");
  assert.deepEqual(result.names, ["CRON_SECRET", "SUPABASE_DB_URL"]);
});

Deno.test("loadConfig() treats an empty optional number as unset and uses its default", () => {
  const config = refreshConfig({ CAFE24_REFRESH_CONCURRENCY: "", CAFE24_API_BASE_URL: "" });
  assert.equal(config.CAFE24_REFRESH_CONCURRENCY, 8);
  assert.equal(config.CAFE24_API_BASE_URL, "https://{mall_id}.cafe24api.com");
});

Deno.test("loadConfig() succeeds when every required name is present", () => {
  const config = refreshConfig();
  assert.equal(config.SUPABASE_DB_URL, REFRESH_ENV.SUPABASE_DB_URL);
  assert.equal(config.CAFE24_CLIENT_ID, "my_client_id");
  assert.equal(config.CAFE24_CLIENT_SECRET_KEY, "my_secret_key");
});

Deno.test("loadConfig() applies the documented defaults", () => {
  const config = refreshConfig();
  assert.equal(config.CAFE24_REFRESH_MARGIN_SECONDS, 1800);
  assert.equal(config.CAFE24_REFRESH_CONCURRENCY, 8);
  assert.equal(config.CAFE24_REQUEST_TIMEOUT_MS, 15_000);
  assert.equal(config.CAFE24_RUN_BUDGET_MS, 100_000);
  assert.equal(config.CAFE24_MAX_CONNECTIONS_PER_RUN, 500);
  assert.equal(config.CAFE24_API_BASE_URL, "https://{mall_id}.cafe24api.com");
  assert.equal(config.CORS_ALLOWED_ORIGINS, "*");
  assert.equal(config.CAFE24_USER_REFRESH_INTERVAL_S, 30);
  assert.equal(config.CRON_SECRET, undefined);
});

Deno.test("loadConfig() reads numbers from their strings", () => {
  const config = refreshConfig({
    CAFE24_REFRESH_MARGIN_SECONDS: "600",
    CAFE24_REFRESH_CONCURRENCY: "16",
    CAFE24_REQUEST_TIMEOUT_MS: "20000",
    CAFE24_RUN_BUDGET_MS: "120000",
    CAFE24_MAX_CONNECTIONS_PER_RUN: "50",
  });
  assert.equal(config.CAFE24_REFRESH_MARGIN_SECONDS, 600);
  assert.equal(config.CAFE24_REFRESH_CONCURRENCY, 16);
  assert.equal(config.CAFE24_REQUEST_TIMEOUT_MS, 20_000);
  assert.equal(config.CAFE24_RUN_BUDGET_MS, 120_000);
  assert.equal(config.CAFE24_MAX_CONNECTIONS_PER_RUN, 50);
});

Deno.test("loadConfig() reports an invalid number as CONFIG_INVALID by name, never by value", () => {
  const cases: Array<[string, string]> = [
    ["CAFE24_REFRESH_CONCURRENCY", "lots-secret-looking-value"],
    ["CAFE24_REFRESH_CONCURRENCY", "0"],
    ["CAFE24_REFRESH_CONCURRENCY", "65"],
    ["CAFE24_REFRESH_CONCURRENCY", "1.5"],
    ["CAFE24_REFRESH_MARGIN_SECONDS", "59"],
    ["CAFE24_REFRESH_MARGIN_SECONDS", "5401"],
    ["CAFE24_REQUEST_TIMEOUT_MS", "999"],
    ["CAFE24_REQUEST_TIMEOUT_MS", "-15000"],
    ["CAFE24_RUN_BUDGET_MS", "Infinity"],
    ["CAFE24_MAX_CONNECTIONS_PER_RUN", "NaN"],
    ["CAFE24_RUN_CPU_BUDGET_MS", "9"],
    ["CAFE24_KEEP_ALIVE_WINDOW_S", "1209601"],
  ];
  for (const [name, value] of cases) {
    const result = loadConfig({ ...REFRESH_ENV, [name]: value }, REFRESH_CONFIG_REQUIRED);
    assert.ok(!result.ok && result.code === "CONFIG_INVALID", name);
    assert.deepEqual(result.names, [name]);
    assert.match(result.rules[0]!, new RegExp(`^${name} must be an integer from \\d+ to \\d+$`));
    assert.ok(!JSON.stringify(result).includes(value), `${name}: the value leaked`);
  }
});

Deno.test("loadConfig() lists every invalid name, sorted", () => {
  const result = loadConfig({
    ...REFRESH_ENV,
    CAFE24_REQUEST_TIMEOUT_MS: "soon",
    CAFE24_REFRESH_CONCURRENCY: "many",
    SUPABASE_URL: "not a url",
  }, REFRESH_CONFIG_REQUIRED);
  assert.deepEqual(result, {
    ok: false,
    code: "CONFIG_INVALID",
    names: ["CAFE24_REFRESH_CONCURRENCY", "CAFE24_REQUEST_TIMEOUT_MS", "SUPABASE_URL"],
    rules: [
      "CAFE24_REFRESH_CONCURRENCY must be an integer from 1 to 64",
      "CAFE24_REQUEST_TIMEOUT_MS must be an integer from 1000 to 60000",
      "SUPABASE_URL must be an absolute URL: the project URL (injected by Supabase)",
    ],
  });
});

Deno.test("loadConfig() rejects invalid secrets and URLs without echoing them", () => {
  const stateSecret = "s".repeat(SECRET_MIN_LENGTH - 1);
  const result = loadConfig({
    CAFE24_OAUTH_STATE_SECRET: stateSecret,
    CAFE24_REDIRECT_URI: "not-a-redirect-uri",
    CAFE24_API_VERSION: "2024-13",
  }, []);
  assert.deepEqual(result, {
    ok: false,
    code: "CONFIG_INVALID",
    names: ["CAFE24_API_VERSION", "CAFE24_OAUTH_STATE_SECRET", "CAFE24_REDIRECT_URI"],
    rules: [
      "CAFE24_API_VERSION must be a date written YYYY-MM-DD",
      "CAFE24_OAUTH_STATE_SECRET must be a secret of at least 32 characters (openssl rand -base64 32)",
      "CAFE24_REDIRECT_URI must be an absolute URL: the redirect URI registered at Cafe24, character for character",
    ],
  });
  const serialized = JSON.stringify(result);
  assert.ok(!serialized.includes(stateSecret));
  assert.ok(!serialized.includes("not-a-redirect-uri"));
});

Deno.test("loadConfig() rejects an API base URL template without {mall_id}", () => {
  for (const template of ["https://shop1.cafe24api.com", "https://{mallid}.cafe24api.com"]) {
    assert.deepEqual(
      loadConfig({ ...REFRESH_ENV, CAFE24_API_BASE_URL: template }, REFRESH_CONFIG_REQUIRED),
      {
        ok: false,
        code: "CONFIG_INVALID",
        names: ["CAFE24_API_BASE_URL"],
        rules: configRules("CONFIG_INVALID", ["CAFE24_API_BASE_URL"]),
      },
      template,
    );
  }
});

Deno.test("loadConfig() rejects an API base URL template that is not a URL", () => {
  assert.deepEqual(
    loadConfig(
      { ...REFRESH_ENV, CAFE24_API_BASE_URL: "{mall_id}.cafe24api.com" },
      REFRESH_CONFIG_REQUIRED,
    ),
    {
      ok: false,
      code: "CONFIG_INVALID",
      names: ["CAFE24_API_BASE_URL"],
      rules: [
        "CAFE24_API_BASE_URL must be a URL template containing {mall_id}, e.g. https://{mall_id}.cafe24api.com",
      ],
    },
  );
});

Deno.test("loadConfig() accepts the sandbox's path-style template", () => {
  const config = refreshConfig({ CAFE24_API_BASE_URL: "http://127.0.0.1:54329/{mall_id}" });
  assert.equal(config.CAFE24_API_BASE_URL, "http://127.0.0.1:54329/{mall_id}");
});

Deno.test("loadConfig() ignores environment variables it does not know", () => {
  const config = refreshConfig({ PATH: "/usr/bin", HOME: "/root", CAFE24_UNKNOWN: "x" });
  assert.ok(!("PATH" in config));
  assert.ok(!("CAFE24_UNKNOWN" in config));
});

Deno.test("refreshSettings() derives the run settings, with lease = timeout + 60 s", () => {
  assert.equal(LEASE_SLACK_MS, 60_000);
  const settings = refreshSettings(refreshConfig());
  // No ring set: the seal writes plaintext (and every run warns TOKEN_KEYS_MISSING).
  assert.equal(settings.tokenSeal.mode, "plaintext");
  const { tokenSeal: _seal, ...values } = settings;
  assert.deepEqual(values, {
    app: {
      apiBaseUrl: "https://{mall_id}.cafe24api.com",
      clientId: "my_client_id",
      clientSecret: "my_secret_key",
      requestTimeoutMs: 15_000,
      apiVersion: null,
    },
    refreshMarginMs: 1_800_000,
    concurrency: 8,
    runBudgetMs: 100_000,
    runCpuBudgetMs: 150,
    maxConnectionsPerRun: 500,
    leaseMs: 75_000,
    policy: "eager",
    keepAliveWindowMs: 7 * 24 * 60 * 60_000,
    poolSize: 1,
    plaintextTokenCopy: false,
  });
});

Deno.test("refreshSettings() follows a configured policy, keep-alive window and CPU budget", () => {
  const settings = refreshSettings(refreshConfig({
    CAFE24_REFRESH_POLICY: "keep_alive",
    CAFE24_KEEP_ALIVE_WINDOW_S: "30",
    CAFE24_RUN_CPU_BUDGET_MS: "1000",
  }));
  assert.equal(settings.policy, "keep_alive");
  assert.equal(settings.keepAliveWindowMs, 30_000);
  assert.equal(settings.runCpuBudgetMs, 1_000);
});

Deno.test("refreshSettings() follows a configured timeout and margin", () => {
  const settings = refreshSettings(refreshConfig({
    CAFE24_REQUEST_TIMEOUT_MS: "20000",
    CAFE24_REFRESH_MARGIN_SECONDS: "600",
    CAFE24_API_BASE_URL: "http://127.0.0.1:54329/{mall_id}",
  }));
  assert.equal(settings.app.requestTimeoutMs, 20_000);
  assert.equal(settings.leaseMs, 80_000);
  assert.equal(settings.refreshMarginMs, 600_000);
  assert.equal(settings.app.apiBaseUrl, "http://127.0.0.1:54329/{mall_id}");
});

/** A failed loadConfig() result without its `rules` (tested separately below). */
function withoutRules<T extends { ok: boolean }>(result: T): Omit<T, "rules"> {
  if (result.ok) return result;
  const { rules: _, ...rest } = result as T & { rules?: unknown };
  return rest;
}

const CONNECT_ENV = {
  SUPABASE_URL: "https://ref.supabase.co",
  SUPABASE_DB_URL: REFRESH_ENV.SUPABASE_DB_URL,
  CAFE24_CLIENT_ID: "my_client_id",
  CAFE24_CLIENT_SECRET_KEY: "my_secret_key",
  CAFE24_REDIRECT_URI: "https://ref.supabase.co/functions/v1/cafe24-callback",
  CAFE24_OAUTH_STATE_SECRET: "a-state-secret-of-32-characters!",
  CAFE24_SCOPES: "mall.read_store, mall.read_product",
  CAFE24_APP_RETURN_URL: "https://app.example/settings/integrations",
  CAFE24_TOKEN_KEYS: JSON.stringify({ k1: "A".repeat(43) + "=" }),
  CAFE24_TOKEN_KEY_ID: "k1",
};

/** CONNECT_ENV without `name`. */
function connectEnvWithout(name: keyof typeof CONNECT_ENV): Record<string, string> {
  const { [name]: _, ...rest } = CONNECT_ENV;
  return rest;
}

Deno.test("cafe24-authorize requires CAFE24_SCOPES, its allow-list of scopes", () => {
  assert.equal(loadConfig(CONNECT_ENV, AUTHORIZE_CONFIG_REQUIRED).ok, true);
  assert.deepEqual(
    withoutRules(loadConfig(connectEnvWithout("CAFE24_SCOPES"), AUTHORIZE_CONFIG_REQUIRED)),
    { ok: false, code: "CONFIG_MISSING", names: ["CAFE24_SCOPES"] },
  );
  assert.deepEqual(
    withoutRules(loadConfig({ ...CONNECT_ENV, CAFE24_SCOPES: "" }, AUTHORIZE_CONFIG_REQUIRED)),
    { ok: false, code: "CONFIG_MISSING", names: ["CAFE24_SCOPES"] },
  );
});

Deno.test("cafe24-callback requires CAFE24_APP_RETURN_URL and, for completing, SUPABASE_URL", () => {
  assert.equal(loadConfig(CONNECT_ENV, CALLBACK_CONFIG_REQUIRED).ok, true);
  for (const name of ["CAFE24_APP_RETURN_URL", "SUPABASE_URL"] as const) {
    assert.deepEqual(
      withoutRules(loadConfig(connectEnvWithout(name), CALLBACK_CONFIG_REQUIRED)),
      { ok: false, code: "CONFIG_MISSING", names: [name] },
      name,
    );
  }
  assert.ok(!(CALLBACK_CONFIG_REQUIRED as readonly string[]).includes("CAFE24_SCOPES"));
});

Deno.test("loadConfig() keeps CAFE24_SCOPES as written when every entry is a Cafe24 scope name", () => {
  for (
    const scopes of [
      "mall.read_store",
      "mall.read_store,mall.write_product",
      " mall.read_store , mall.read_store ",
      Array(50).fill("mall.read_order").join(","),
    ]
  ) {
    const result = loadConfig({ ...CONNECT_ENV, CAFE24_SCOPES: scopes }, AUTHORIZE_CONFIG_REQUIRED);
    assert.ok(result.ok, scopes);
    assert.equal(result.config.CAFE24_SCOPES, scopes);
  }
});

Deno.test("loadConfig() reports a CAFE24_SCOPES that is not a list of scope names as CONFIG_INVALID, by name", () => {
  for (
    const scopes of [
      "openid",
      "mall.read_store mall.read_product",
      "mall.read_store,,mall.read_product",
      "mall.read_store,",
      "mall.delete_store",
      "MALL.READ_STORE",
      Array(51).fill("mall.read_order").join(","),
    ]
  ) {
    const result = withoutRules(
      loadConfig({ ...CONNECT_ENV, CAFE24_SCOPES: scopes }, AUTHORIZE_CONFIG_REQUIRED),
    );
    assert.deepEqual(result, { ok: false, code: "CONFIG_INVALID", names: ["CAFE24_SCOPES"] });
    assert.ok(!JSON.stringify(result).includes(scopes), "the value leaked");
  }
});

Deno.test("every variable's rule is written out, for an invalid and for a missing value", () => {
  const ranges: Array<[string, string]> = [
    ["CAFE24_REFRESH_MARGIN_SECONDS", "an integer from 60 to 5400"],
    ["CAFE24_REFRESH_CONCURRENCY", "an integer from 1 to 64"],
    ["CAFE24_REQUEST_TIMEOUT_MS", "an integer from 1000 to 60000"],
    ["CAFE24_RUN_BUDGET_MS", "an integer from 1000 to 3600000"],
    ["CAFE24_MAX_CONNECTIONS_PER_RUN", "an integer from 1 to 1000000"],
    ["CAFE24_USER_REFRESH_INTERVAL_S", "an integer from 1 to 3600"],
    ["CAFE24_RUN_CPU_BUDGET_MS", "an integer from 10 to 3600000"],
    ["CAFE24_KEEP_ALIVE_WINDOW_S", "an integer from 1 to 1209600"],
    ["CAFE24_REFRESH_POLICY", "eager or keep_alive"],
  ];
  for (const [name, rule] of ranges) {
    assert.deepEqual(configRules("CONFIG_INVALID", [name]), [`${name} must be ${rule}`]);
    const result = loadConfig({ ...REFRESH_ENV, [name]: "0.5" }, REFRESH_CONFIG_REQUIRED);
    assert.ok(!result.ok);
    assert.deepEqual(result.rules, [`${name} must be ${rule}`], name);
  }
  assert.deepEqual(configRules("CONFIG_MISSING", ["CAFE24_OAUTH_STATE_SECRET"]), [
    "CAFE24_OAUTH_STATE_SECRET must be set to a secret of at least 32 characters (openssl rand -base64 32)",
  ]);
  assert.deepEqual(configRules("CONFIG_INVALID", ["CAFE24_SCOPES"]), [
    "CAFE24_SCOPES must be comma-separated Cafe24 scope names, e.g. mall.read_store,mall.read_product",
  ]);
  assert.deepEqual(configRules("CONFIG_MISSING", ["NOT_A_VARIABLE"]), [
    "NOT_A_VARIABLE must be set",
  ]);
});

Deno.test("CAFE24_OAUTH_STATE_SECRET needs 32 characters: 31 is invalid, 32 is fine", () => {
  assert.equal(SECRET_MIN_LENGTH, 32);
  const short = loadConfig({ CAFE24_OAUTH_STATE_SECRET: "x".repeat(31) }, []);
  assert.ok(!short.ok);
  assert.deepEqual(short.names, ["CAFE24_OAUTH_STATE_SECRET"]);
  assert.match(short.rules[0]!, /at least 32 characters/);
  assert.ok(!JSON.stringify(short).includes("x".repeat(31)), "the value is never echoed");
  const long = loadConfig({ CAFE24_OAUTH_STATE_SECRET: "x".repeat(32) }, []);
  assert.ok(long.ok);
});

Deno.test("a short CRON_SECRET is accepted and reported as CRON_SECRET_WEAK", () => {
  const weak = refreshConfig({ CRON_SECRET: "x".repeat(SECRET_MIN_LENGTH - 1) });
  assert.equal(weak.CRON_SECRET, "x".repeat(31), "a weak secret still configures the function");
  assert.deepEqual(configWarnings(weak), ["CRON_SECRET_WEAK"]);
  assert.match(CONFIG_WARNINGS.CRON_SECRET_WEAK.message, /shorter than 32 characters/);
  assert.deepEqual(configWarnings(refreshConfig({ CRON_SECRET: "x".repeat(32) })), []);
  assert.deepEqual(configWarnings(refreshConfig()), [], "no secret set: nothing to warn about");
});

const KEY = btoa(String.fromCharCode(...new Uint8Array(32).fill(5)));

Deno.test("the token key ring's problems are warnings, each saying what to do", () => {
  const ring = (keys: unknown, id?: string) =>
    tokenKeyWarnings(
      refreshConfig({
        CAFE24_TOKEN_KEYS: typeof keys === "string" ? keys : JSON.stringify(keys),
        CAFE24_TOKEN_KEY_ID: id,
      }),
    );
  assert.deepEqual(ring({ k1: KEY, k0: KEY }, "k1"), []);
  assert.deepEqual(tokenKeyWarnings(refreshConfig()), ["TOKEN_KEYS_MISSING"]);
  assert.deepEqual(tokenKeyWarnings(refreshConfig({ CAFE24_TOKEN_KEY_ID: "k1" })), [
    "TOKEN_KEYS_MISSING",
  ]);
  assert.deepEqual(ring({ k1: KEY }), ["TOKEN_KEY_ID_UNKNOWN"]);
  assert.deepEqual(ring({ k1: KEY }, "k2"), ["TOKEN_KEY_ID_UNKNOWN"]);
  assert.deepEqual(ring({ k1: KEY, k0: "c2hvcnQ=" }, "k1"), ["TOKEN_KEYS_INVALID"]);
  assert.deepEqual(ring({ k1: "c2hvcnQ=" }, "k1"), ["TOKEN_KEYS_INVALID", "TOKEN_KEY_ID_UNKNOWN"]);
  assert.deepEqual(ring({ "k 1": KEY }, "k1"), ["TOKEN_KEYS_INVALID", "TOKEN_KEY_ID_UNKNOWN"]);
  for (
    const code of ["TOKEN_KEYS_MISSING", "TOKEN_KEY_ID_UNKNOWN", "TOKEN_KEYS_INVALID"] as const
  ) {
    assert.match(CONFIG_WARNINGS[code].message, /CAFE24_TOKEN_KEY/, code);
  }
});

Deno.test("a malformed ring never makes cafe24-refresh, -token or -webhook refuse", () => {
  for (const name of ["cafe24-refresh", "cafe24-token", "cafe24-webhook"] as const) {
    const { required, uses, tolerates } = FUNCTION_SETTINGS[name];
    const loaded = loadConfig(
      { ...REFRESH_ENV, CAFE24_TOKEN_KEYS: "not json " + KEY, CAFE24_TOKEN_KEY_ID: "no kid!" },
      required,
      uses,
      tolerates,
    );
    assert.ok(loaded.ok, name);
    assert.deepEqual(loaded.ignored, ["CAFE24_TOKEN_KEYS", "CAFE24_TOKEN_KEY_ID"]);
    assert.deepEqual(tokenKeyWarnings(loaded.config, loaded.ignored), [
      "TOKEN_KEYS_INVALID",
      "TOKEN_KEY_ID_UNKNOWN",
    ]);
    assert.deepEqual(configWarnings(loaded.config, loaded.ignored), ["CONFIG_VALUE_IGNORED"]);
  }
  const refused = loadConfig({ CAFE24_TOKEN_KEYS: "not json " + KEY }, []);
  assert.ok(!refused.ok);
  assert.ok(!JSON.stringify(refused).includes(KEY), "the ring is never echoed");
  assert.match(refused.rules[0]!, /^CAFE24_TOKEN_KEYS must be a JSON object of key ids/);
});

Deno.test("CAFE24_PLAINTEXT_TOKEN_COPY=true copies access tokens and is reported", () => {
  const copying = refreshConfig({ CAFE24_PLAINTEXT_TOKEN_COPY: "true" });
  assert.equal(refreshSettings(copying).plaintextTokenCopy, true);
  assert.deepEqual(configWarnings(copying), ["PLAINTEXT_TOKEN_COPY"]);
  assert.match(CONFIG_WARNINGS.PLAINTEXT_TOKEN_COPY.message, /never|plaintext/);
  assert.equal(refreshSettings(refreshConfig()).plaintextTokenCopy, false);
});

Deno.test("CAFE24_USER_REFRESH_INTERVAL_S is read from its string", () => {
  assert.equal(
    refreshConfig({ CAFE24_USER_REFRESH_INTERVAL_S: "5" }).CAFE24_USER_REFRESH_INTERVAL_S,
    5,
  );
});
