import assert from "node:assert/strict";
import {
  isValidMallId,
  mallApiUrl,
  mallBaseUrl,
} from "../../../supabase/functions/_shared/cafe24/mall_id.ts";

const DEFAULT_TEMPLATE = "https://{mall_id}.cafe24api.com";
const SANDBOX_TEMPLATE = "http://127.0.0.1:54329/{mall_id}";

const VALID = ["abcd", "shop", "yourmall", "shop1", "a123", "m0nday2shop", "abcdefghijklmnop"];

const INVALID_STRINGS = [
  "",
  "Shop1", // uppercase
  "SHOPONE",
  "shopOne",
  "1shop", // leading digit
  "1234",
  "abc", // 3 characters
  "abcdefghijklmnopq", // 17 characters
  "evil.example/x#",
  "a@b",
  "shop@evil.example",
  "shop.evil",
  "shop%2f",
  "shop%2F..",
  "shop-one",
  "shop_one",
  "shop one",
  " shop",
  "shop ",
  "shop\n",
  "shop\u0000",
  "ｓhop1", // full-width s
  "shöp",
  "ѕhop", // Cyrillic dze
  "shop/../x",
  "shop:80",
  "shop?x",
  "xn--shop",
];

const NON_STRINGS: unknown[] = [
  undefined,
  null,
  1234,
  true,
  ["shop"],
  { toString: () => "shop" },
  new String("shop"),
];

Deno.test("isValidMallId() accepts 4-16 lowercase letters and digits starting with a letter", () => {
  for (const value of VALID) {
    assert.equal(isValidMallId(value), true, value);
  }
});

Deno.test("isValidMallId() rejects uppercase, leading digits, bad lengths and URL syntax", () => {
  for (const value of INVALID_STRINGS) {
    assert.equal(isValidMallId(value), false, JSON.stringify(value));
  }
});

Deno.test("isValidMallId() rejects values that are not strings", () => {
  for (const value of NON_STRINGS) {
    assert.equal(isValidMallId(value), false, String(value));
  }
});

Deno.test("mallBaseUrl() puts the mall id in the host of the default template", () => {
  const url = mallBaseUrl(DEFAULT_TEMPLATE, "shop1");
  assert.equal(url.href, "https://shop1.cafe24api.com/");
  assert.equal(url.host, "shop1.cafe24api.com");
  assert.equal(url.protocol, "https:");
});

Deno.test("mallBaseUrl() puts the mall id in the path of the sandbox template", () => {
  const url = mallBaseUrl(SANDBOX_TEMPLATE, "shop1");
  assert.equal(url.href, "http://127.0.0.1:54329/shop1");
  assert.equal(url.host, "127.0.0.1:54329");
});

Deno.test("mallBaseUrl() throws RangeError for every invalid mall id", () => {
  for (const template of [DEFAULT_TEMPLATE, SANDBOX_TEMPLATE]) {
    for (const value of [...INVALID_STRINGS, ...NON_STRINGS]) {
      assert.throws(
        () => mallBaseUrl(template, value as string),
        RangeError,
        `${template} with ${JSON.stringify(value)}`,
      );
    }
  }
});

Deno.test("mallBaseUrl() refuses a template whose result would carry credentials", () => {
  for (
    const template of [
      "https://user:pw@{mall_id}.cafe24api.com",
      "https://user@{mall_id}.cafe24api.com",
    ]
  ) {
    assert.throws(() => mallBaseUrl(template, "shop1"), RangeError, template);
  }
});

Deno.test("mallApiUrl() joins the endpoint path under the default template", () => {
  assert.equal(
    mallApiUrl(DEFAULT_TEMPLATE, "shop1", "api/v2/oauth/token").href,
    "https://shop1.cafe24api.com/api/v2/oauth/token",
  );
  assert.equal(
    mallApiUrl(DEFAULT_TEMPLATE, "shop1", "/api/v2/oauth/token").href,
    "https://shop1.cafe24api.com/api/v2/oauth/token",
  );
});

Deno.test("mallApiUrl() keeps the mall's path prefix under the sandbox template", () => {
  assert.equal(
    mallApiUrl(SANDBOX_TEMPLATE, "shop1", "api/v2/oauth/token").href,
    "http://127.0.0.1:54329/shop1/api/v2/oauth/token",
  );
  assert.equal(
    mallApiUrl("http://127.0.0.1:54329/{mall_id}/", "shop1", "/api/v2/oauth/token").href,
    "http://127.0.0.1:54329/shop1/api/v2/oauth/token",
  );
});

Deno.test("mallApiUrl() throws RangeError for every invalid mall id", () => {
  for (const template of [DEFAULT_TEMPLATE, SANDBOX_TEMPLATE]) {
    for (const value of [...INVALID_STRINGS, ...NON_STRINGS]) {
      assert.throws(
        () => mallApiUrl(template, value as string, "api/v2/oauth/token"),
        RangeError,
        `${template} with ${JSON.stringify(value)}`,
      );
    }
  }
});

Deno.test("mallApiUrl() never lets the path change the host", () => {
  for (const path of ["//evil.example/x", "https://evil.example/x", "@evil.example/x"]) {
    let host: string;
    try {
      host = mallApiUrl(DEFAULT_TEMPLATE, "shop1", path).host;
    } catch (error) {
      assert.ok(error instanceof RangeError, String(error));
      continue;
    }
    assert.equal(host, "shop1.cafe24api.com", path);
  }
});
