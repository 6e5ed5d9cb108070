import assert from "node:assert/strict";
import { parseAppNotice } from "../../../supabase/functions/_shared/connect/app_uninstalled.ts";

const CLIENT_ID = "my-client-id";
const notice = (event: unknown, resource: unknown) => JSON.stringify({ event_no: event, resource });

Deno.test("parseAppNotice() reads 90077 and 90078 for this app", () => {
  const resource = {
    mall_id: "myshop",
    client_id: CLIENT_ID,
    app_name: "connector",
    deleted_date: "2026-12-01T12:30:15+09:00",
  };
  assert.deepEqual(parseAppNotice(notice(90077, resource), CLIENT_ID), {
    eventNo: 90077,
    mallId: "myshop",
  });
  assert.deepEqual(parseAppNotice(notice(90078, resource), CLIENT_ID), {
    eventNo: 90078,
    mallId: "myshop",
  });
  assert.deepEqual(parseAppNotice(notice("90077", resource), CLIENT_ID), {
    eventNo: 90077,
    mallId: "myshop",
  });
});

Deno.test("parseAppNotice() takes a notice without client_id", () => {
  for (const resource of [{ mall_id: "myshop" }, { mall_id: "myshop", client_id: null }]) {
    assert.deepEqual(parseAppNotice(notice(90077, resource), CLIENT_ID), {
      eventNo: 90077,
      mallId: "myshop",
    });
  }
});

Deno.test("parseAppNotice() ignores another app's notice, other events and bad mall ids", () => {
  const cases: [string, string][] = [
    [notice(90077, { mall_id: "myshop", client_id: "other-app" }), "another app"],
    [notice(90077, { mall_id: "myshop", client_id: 42 }), "a numeric client_id"],
    [notice(90079, { mall_id: "myshop" }), "renewed"],
    [notice(1, { mall_id: "myshop" }), "another event"],
    [notice("90077x", { mall_id: "myshop" }), "a malformed event number"],
    [notice(null, { mall_id: "myshop" }), "no event number"],
    [notice(90077, { mall_id: "evil.example/x#" }), "a mall id that leaves Cafe24's host"],
    [notice(90077, { mall_id: "MyShop" }), "an uppercase mall id"],
    [notice(90077, {}), "no mall id"],
    [notice(90077, ["myshop"]), "a resource array"],
    [notice(90077, "myshop"), "a resource string"],
    ["[]", "an array"],
    ["null", "null"],
    ["", "empty"],
    ["{", "not JSON"],
  ];
  for (const [body, what] of cases) assert.equal(parseAppNotice(body, CLIENT_ID), null, what);
});
