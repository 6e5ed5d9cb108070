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
import { describeError, MESSAGES } from "../../../local/settings_page/settings.js";

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
