/**
 * The settings page says every code the functions can answer as a sentence, in Korean and in
 * English: request errors (and the callback's ?reason=), connect warnings, revoke results, refresh
 * failures and the reasons a connection was disconnected. A code added to errors.ts without a
 * sentence on the page fails here.
 */
import assert from "node:assert/strict";
import {
  CONNECT_WARNINGS,
  REFRESH_FAILURES,
  REQUEST_ERRORS,
  REVOKE_FAILURES,
} from "../../../supabase/functions/_shared/platform/errors.ts";
import { DISCONNECT_REASONS } from "../../../supabase/functions/_shared/connect/disconnect.ts";
import { APP_UNINSTALLED } from "../../../supabase/functions/_shared/connect/app_uninstalled.ts";
import {
  describeError,
  MESSAGES,
  refreshOutcome,
  relativeTime,
  TEXT,
} from "../../../local/settings_page/settings.js";
import { SKIP_REASONS } from "../../../supabase/functions/_shared/refresh/skip_reasons.ts";

const HANGUL = /[\uac00-\ud7a3]/;

const CODES = [
  ...Object.keys(REQUEST_ERRORS),
  ...Object.keys(CONNECT_WARNINGS),
  ...Object.keys(REVOKE_FAILURES),
  ...Object.keys(REFRESH_FAILURES),
  ...Object.values(DISCONNECT_REASONS),
  APP_UNINSTALLED,
  // Written by complete_pending_connection (60_connect_and_custody.sql) on the account that lost
  // the mall.
  "CONNECTION_TAKEN_OVER",
];

Deno.test("every code the functions answer has a Korean and an English sentence", () => {
  const missing = CODES.filter((code) => !Object.hasOwn(MESSAGES, code));
  assert.deepEqual(missing, []);
  for (const [code, { ko, en }] of Object.entries(MESSAGES)) {
    assert.match(ko, HANGUL, code);
    assert.match(en, /^[A-Z].*[.]$/, code);
    assert.doesNotMatch(`${ko} ${en}`, new RegExp(code), `${code}: a sentence, not the code`);
  }
});

Deno.test("values are filled in; an unknown code gets the generic sentence with the code", () => {
  const limited = describeError("RATE_LIMITED", { seconds: 17 });
  assert.match(limited.en, /try again in 17 seconds/);
  assert.match(limited.ko, /17초 후에/);
  const unknown = describeError("SOMETHING_NEW");
  assert.match(unknown.en, /Something went wrong \(code SOMETHING_NEW\)/);
  assert.match(unknown.ko, /코드 SOMETHING_NEW/);
  assert.equal(unknown.code, "SOMETHING_NEW");
  // Inherited object keys are not codes.
  assert.match(describeError("constructor").en, /code constructor/);
});

Deno.test("each language names Cafe24 its own way: 카페24 in Korean, Cafe24 in English", async () => {
  const all = [...Object.values(MESSAGES), ...Object.values(TEXT)];
  for (const { ko, en } of all) {
    assert.doesNotMatch(ko, /Cafe24/, ko);
    assert.doesNotMatch(en, /카페24/, en);
  }
  const html = await Deno.readTextFile(
    new URL("../../../local/settings_page/index.html", import.meta.url),
  );
  assert.doesNotMatch(html.replace(/<span class="en">[^<]*<\/span>/g, ""), /Cafe24 [가-힣]/);
});

Deno.test("relative times are said in both languages", () => {
  assert.deepEqual(relativeTime(4), { ko: "4분 후", en: "in 4 min" });
  assert.deepEqual(relativeTime(-90), { ko: "2시간 전", en: "2 h ago" });
  assert.deepEqual(relativeTime(3 * 1440), { ko: "3일 후", en: "in 3 d" });
});

Deno.test("'Refresh now' that refreshed nothing says why, in both languages", () => {
  const fresh = refreshOutcome({
    refreshed: 0,
    failed: 0,
    skipped: 1,
    scanned: 1,
    skipped_reasons: { not_due: 1, leased: 0 },
  });
  assert.equal(fresh.en, "Nothing was refreshed: the tokens are still fresh.");
  assert.match(fresh.ko, /새로 고친 연결이 없습니다: 토큰이 아직 충분히 유효합니다/);
  const dead = refreshOutcome({
    refreshed: 0,
    failed: 0,
    skipped: 1,
    scanned: 1,
    skipped_reasons: { reconnect_required: 1 },
  });
  assert.match(dead.en, /must be connected again/);
  assert.match(
    refreshOutcome({ refreshed: 0, failed: 0, skipped: 0, scanned: 0 }).en,
    /no connection/,
  );
  assert.match(refreshOutcome({ refreshed: 2, failed: 0, skipped: 1 }).en, /2 refreshed/);
  // Every skip reason a user's run can report has its sentence.
  for (const reason of SKIP_REASONS) {
    const said = refreshOutcome({ scanned: 1, skipped: 1, skipped_reasons: { [reason]: 1 } });
    assert.match(said.ko, /[가-힣]/);
    assert.match(said.en, /^Nothing was refreshed: .+\.$/);
  }
});
