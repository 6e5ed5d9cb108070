import assert from "node:assert/strict";
import { classifyAppAccess } from "../../../supabase/functions/_shared/cafe24/app_status.ts";

const apiError = (status: number, message: string) =>
  JSON.stringify({ error: { code: status, message, more_info: {} } });

Deno.test("classifyAppAccess(): 2xx installed, 401 unauthorized", () => {
  assert.equal(classifyAppAccess(200, '{"shops":[]}'), "installed");
  assert.equal(classifyAppAccess(401, apiError(401, "Invalid access_token")), "unauthorized");
  assert.equal(classifyAppAccess(401, ""), "unauthorized");
});

Deno.test("classifyAppAccess(): a 403 saying the app is gone is a deletion", () => {
  for (
    const message of [
      // Cafe24's guide: "쇼핑몰에서 해당 앱이 삭제된 경우" (the app deleted from the shop).
      "쇼핑몰에서 해당 앱이 삭제되었습니다.",
      "[Not Authorized] 앱이 삭제된 쇼핑몰입니다",
      "[Not Authorized] This app has been deleted from the shop.",
      "This app is not installed on the shop.",
      "The app was uninstalled by the shop operator",
      "The app was removed from this mall",
    ]
  ) {
    assert.equal(classifyAppAccess(403, apiError(403, message)), "app_deleted", message);
  }
});

Deno.test("classifyAppAccess(): words other 403s use are not a deletion", () => {
  // "expired" and "disabled" also describe tokens, features and accounts: nothing is removed.
  for (
    const message of [
      "App usage period expired",
      "The access token has expired",
      "This feature is disabled for the shop",
      "[Not Authorized] This account has been disabled.",
      "Forbidden: request blocked",
    ]
  ) {
    assert.equal(classifyAppAccess(403, apiError(403, message)), "unknown", message);
  }
});

Deno.test("classifyAppAccess(): a 403 about a scope is not a deletion", () => {
  for (
    const message of [
      "Insufficient scope: mall.read_store is required",
      "Insufficient scope.",
      "The scope has been deleted from this token",
    ]
  ) {
    assert.equal(classifyAppAccess(403, apiError(403, message)), "missing_scope", message);
  }
});

Deno.test("classifyAppAccess(): an unreadable or unexplained 403 proves nothing", () => {
  assert.equal(classifyAppAccess(403, ""), "unknown");
  assert.equal(classifyAppAccess(403, "<html>Forbidden</html>"), "unknown");
  assert.equal(classifyAppAccess(403, apiError(403, "Forbidden")), "unknown");
  assert.equal(classifyAppAccess(403, '{"error":{"code":403}}'), "unknown");
  assert.equal(classifyAppAccess(403, "null"), "unknown");
});

Deno.test("classifyAppAccess(): other statuses prove nothing", () => {
  for (const status of [301, 400, 404, 429, 500, 502, 503, 504]) {
    assert.equal(classifyAppAccess(status, apiError(status, "app deleted")), "unknown");
  }
});
