/** Where an Admin API call may go: only the connection's mall, only under /api/v2/admin/. */
import assert from "node:assert/strict";
import {
  adminApiUrl,
  checkAdminPath,
  pathTemplate,
} from "../../../supabase/functions/_shared/api/path.ts";
import { RequestError } from "../../../supabase/functions/_shared/platform/errors.ts";

const HOSTED = "https://{mall_id}.cafe24api.com";
const SANDBOX = "http://127.0.0.1:54329/{mall_id}";

const refused = (fn: () => unknown, label: string) =>
  assert.throws(fn, (e) => e instanceof RequestError && e.code === "INVALID_PATH", label);

Deno.test("a plain path goes to the mall's own host, with the query and the stored shop_no", () => {
  const url = adminApiUrl(HOSTED, "mymall", "/api/v2/admin/products/12", { limit: 5 }, 1);
  assert.equal(url.href, "https://mymall.cafe24api.com/api/v2/admin/products/12?limit=5&shop_no=1");
  const sandbox = adminApiUrl(SANDBOX, "mymall", "/api/v2/admin/products", { shop_no: 2 }, 1);
  assert.equal(sandbox.href, "http://127.0.0.1:54329/mymall/api/v2/admin/products?shop_no=2");
  const none = adminApiUrl(HOSTED, "mymall", "/api/v2/admin/shops", {}, null);
  assert.equal(none.search, "");
});

Deno.test("tricks and paths outside the prefix are INVALID_PATH", () => {
  for (
    const path of [
      undefined,
      42,
      "",
      "/api/v2/admin/",
      "/api/v2/oauth/token",
      "api/v2/admin/products",
      "/api/v2/admin/../oauth/token",
      "/api/v2/admin/./products",
      "/api/v2/admin/%2e%2e/oauth/token",
      "/api/v2/admin/%2E%2E/oauth/token",
      "/api/v2/admin/products%2f..%2f..",
      "/api/v2/admin/products%5c..",
      "/api/v2/admin/products\\..\\..\\oauth",
      "/api/v2/admin//evil.example/x",
      "/api/v2/admin/products@evil.example",
      "/api/v2/admin/products#fragment",
      "/api/v2/admin/products?limit=1",
      "/api/v2/admin/products\n",
      "/api/v2/admin/pro ducts",
      "https://evil.example/api/v2/admin/products",
      "//evil.example/api/v2/admin/products",
      `/api/v2/admin/${"x".repeat(3000)}`,
    ]
  ) {
    refused(() => checkAdminPath(path), String(path));
    refused(() => adminApiUrl(HOSTED, "mymall", path, {}, null), String(path));
  }
});

Deno.test("a mall id that would leave the host is INVALID_PATH", () => {
  refused(() => adminApiUrl(HOSTED, "evil.example/x#", "/api/v2/admin/products", {}, null), "");
});

Deno.test("log lines name the kind of call, never an id", () => {
  assert.equal(pathTemplate("/api/v2/admin/products"), "/api/v2/admin/products");
  assert.equal(
    pathTemplate("/api/v2/admin/products/12/variants/P000000N000A"),
    "/api/v2/admin/products/{id}/variants/{id}",
  );
  assert.equal(pathTemplate("/api/v2/admin/orders/20261201-0000013"), "/api/v2/admin/orders/{id}");
});
