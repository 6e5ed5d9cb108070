/**
 * Each function refuses only on the variables it uses: every variable set invalid in turn (and
 * each required one unset in turn), with the functions that refuse, is what
 * docs/configuration.md's "Which function refuses" table says.
 */
import assert from "node:assert/strict";
import {
  ENV_NAMES,
  type EnvName,
  FUNCTION_SETTINGS,
  type FunctionName,
  loadConfig,
} from "../../../supabase/functions/_shared/platform/config.ts";

/** A value each variable's rule refuses; variables without one accept any non-empty text. */
const INVALID: Partial<Record<EnvName, string>> = {
  SUPABASE_URL: "not a url",
  CAFE24_REDIRECT_URI: "not a url",
  CAFE24_OAUTH_STATE_SECRET: "s".repeat(29),
  CAFE24_SCOPES: "every scope!",
  CAFE24_APP_RETURN_URL: "not a url",
  CAFE24_API_VERSION: "2025/12/01",
  CAFE24_API_BASE_URL: "https://no-placeholder.example",
  CAFE24_REFRESH_MARGIN_SECONDS: "soon",
  CAFE24_REFRESH_CONCURRENCY: "lots",
  CAFE24_REFRESH_POOL_SIZE: "0",
  CAFE24_REQUEST_TIMEOUT_MS: "10",
  CAFE24_RUN_BUDGET_MS: "forever",
  CAFE24_RUN_CPU_BUDGET_MS: "1",
  CAFE24_REFRESH_POLICY: "sometimes",
  CAFE24_KEEP_ALIVE_WINDOW_S: "-1",
  CAFE24_MAX_CONNECTIONS_PER_RUN: "0",
  CAFE24_USER_REFRESH_INTERVAL_S: "0",
  CAFE24_API_BUCKET_CAPACITY: "0",
  CAFE24_API_BUCKET_DRAIN_PER_S: "0",
  CAFE24_API_MAX_PER_S: "10",
  CAFE24_ACCEPT_SERVICE_ROLE_KEY: "maybe",
  CAFE24_EVENTS_WEBHOOK_URL: "ftp://events.example",
  CAFE24_EVENTS_WEBHOOK_SECRET: "short",
  CAFE24_TOKEN_KEYS: "k1=c2VjcmV0",
  CAFE24_TOKEN_KEY_ID: "key one",
  CAFE24_PLAINTEXT_TOKEN_COPY: "maybe",
};
const ANY_TEXT: EnvName[] = [
  "SUPABASE_DB_URL",
  "SUPABASE_ANON_KEY",
  "SUPABASE_PUBLISHABLE_KEYS",
  "CRON_SECRET",
  "CAFE24_CLIENT_ID",
  "CAFE24_CLIENT_SECRET_KEY",
  "CORS_ALLOWED_ORIGINS",
  "SUPABASE_SECRET_KEYS",
  "CAFE24_WEBHOOK_API_KEY",
  "SUPABASE_SERVICE_ROLE_KEY",
];

/** A configuration every function accepts. */
const VALID: Record<string, string> = {
  SUPABASE_URL: "https://ref.supabase.co",
  SUPABASE_DB_URL: "postgresql://postgres:pw@127.0.0.1:5432/postgres",
  SUPABASE_ANON_KEY: "anon",
  CRON_SECRET: "c".repeat(40),
  CAFE24_CLIENT_ID: "client",
  CAFE24_CLIENT_SECRET_KEY: "secret",
  CAFE24_REDIRECT_URI: "https://ref.supabase.co/functions/v1/cafe24-callback",
  CAFE24_OAUTH_STATE_SECRET: "s".repeat(40),
  CAFE24_SCOPES: "mall.read_store",
  CAFE24_APP_RETURN_URL: "https://app.example/settings",
  CAFE24_TOKEN_KEYS: JSON.stringify({ k1: "A".repeat(43) + "=" }),
  CAFE24_TOKEN_KEY_ID: "k1",
};

const FUNCTIONS = Object.keys(FUNCTION_SETTINGS) as FunctionName[];

function refusing(
  env: Record<string, string>,
  code: "CONFIG_INVALID" | "CONFIG_MISSING" | "IGNORED",
  variable?: string,
) {
  return FUNCTIONS.filter((name) => {
    const settings: {
      required: readonly EnvName[];
      uses: readonly EnvName[];
      tolerates?: readonly EnvName[];
    } = FUNCTION_SETTINGS[name];
    const loaded = loadConfig(env, settings.required, settings.uses, settings.tolerates);
    if (code === "IGNORED") return loaded.ok && loaded.ignored.includes(variable!);
    return !loaded.ok && loaded.code === code;
  });
}

/** variable → [functions refusing it invalid, refusing it unset, ignoring it invalid]. */
function measured(): Map<string, string[]> {
  const table = new Map<string, string[]>();
  for (const name of ENV_NAMES) {
    const invalid = INVALID[name];
    const withInvalid = { ...VALID, [name]: invalid ?? "" };
    const whenInvalid = invalid === undefined ? [] : refusing(withInvalid, "CONFIG_INVALID");
    const ignoring = invalid === undefined ? [] : refusing(withInvalid, "IGNORED", name);
    const { [name]: _, ...unset } = VALID;
    const whenUnset = refusing(unset, "CONFIG_MISSING");
    const list = (names: string[]) =>
      names.length === 0 ? "—" : names.map((n) => n.replace("cafe24-", "")).join(", ");
    table.set(name, [list(whenInvalid), list(whenUnset), list(ignoring)]);
  }
  return table;
}

/** The docs' table: `| \`NAME\` | invalid | unset | ignored |` rows under the heading. */
async function documented(): Promise<Map<string, string[]>> {
  const text = await Deno.readTextFile(new URL("../../../docs/configuration.md", import.meta.url));
  const section = text.split("## Which function refuses")[1]?.split("\n## ")[0];
  assert.ok(section !== undefined, "docs/configuration.md has a 'Which function refuses' section");
  const table = new Map<string, string[]>();
  for (const line of section.split("\n")) {
    const cells = /^\|\s*`(\w+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|/.exec(line);
    if (cells) table.set(cells[1]!, cells.slice(2, 5).map((cell) => cell.trim()));
  }
  return table;
}

Deno.test("every variable is either given an invalid value here or takes any text", () => {
  for (const name of ENV_NAMES) {
    assert.ok((name in INVALID) !== ANY_TEXT.includes(name), name);
  }
  for (const [name, value] of Object.entries(INVALID)) {
    assert.equal(loadConfig({ [name]: value }, []).ok, false, `${name}=${value} is refused`);
  }
  assert.ok(FUNCTIONS.every((name) => loadConfig(VALID, FUNCTION_SETTINGS[name].required).ok));
});

Deno.test("a connect-flow setting never stops the refreshes: a 29-character state secret", () => {
  assert.deepEqual(
    refusing({ ...VALID, CAFE24_OAUTH_STATE_SECRET: "s".repeat(29) }, "CONFIG_INVALID"),
    ["cafe24-authorize", "cafe24-callback"],
  );
});

Deno.test("the refresh's tuning falls back to its default with a warning, never refuses", () => {
  const { required, uses, tolerates } = FUNCTION_SETTINGS["cafe24-refresh"];
  const loaded = loadConfig(
    { ...VALID, CAFE24_REFRESH_CONCURRENCY: "lots", CAFE24_REFRESH_POLICY: "sometimes" },
    required,
    uses,
    tolerates,
  );
  assert.ok(loaded.ok);
  assert.equal(loaded.config.CAFE24_REFRESH_CONCURRENCY, 8);
  assert.equal(loaded.config.CAFE24_REFRESH_POLICY, "eager");
  assert.deepEqual(loaded.ignored, ["CAFE24_REFRESH_CONCURRENCY", "CAFE24_REFRESH_POLICY"]);
});

Deno.test("docs/configuration.md lists which functions refuse on each variable", async () => {
  const docs = await documented();
  const actual = measured();
  const row = ([name, cells]: [string, string[]]) => `| \`${name}\` | ${cells.join(" | ")} |`;
  const expected = [...actual].map(row);
  assert.deepEqual(
    [...docs].map(row),
    expected,
    `the table should read:\n${expected.join("\n")}`,
  );
});
