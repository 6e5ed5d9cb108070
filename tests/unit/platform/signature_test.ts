import assert from "node:assert/strict";
import {
  DEFAULT_TOLERANCE_SECONDS,
  signBody,
  signCronCall,
  verifyCronCall,
  verifySignedBody,
} from "../../../supabase/functions/_shared/platform/signature.ts";

const SECRET = "whsec-test-0123456789abcdef0123456789";
const BODY = '{"id":7,"type":"connected"}';
const AT = 1_767_225_600;

async function hmacHex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(message));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("signBody() is HMAC-SHA256 over `timestamp.body`, hex, as v1=", async () => {
  assert.equal(signBody(SECRET, AT, BODY), `v1=${await hmacHex(SECRET, `${AT}.${BODY}`)}`);
});

Deno.test("verifySignedBody() accepts a fresh, matching delivery", () => {
  const headers = { timestamp: String(AT), signature: signBody(SECRET, AT, BODY) };
  assert.equal(verifySignedBody(SECRET, headers, BODY, AT), true);
  assert.equal(verifySignedBody(SECRET, headers, BODY, AT + DEFAULT_TOLERANCE_SECONDS), true);
  assert.equal(verifySignedBody(SECRET, headers, BODY, AT - DEFAULT_TOLERANCE_SECONDS), true);
});

Deno.test("verifySignedBody() refuses another secret, body or timestamp", () => {
  const signature = signBody(SECRET, AT, BODY);
  const ok = { timestamp: String(AT), signature };
  assert.equal(verifySignedBody(`${SECRET}x`, ok, BODY, AT), false);
  assert.equal(verifySignedBody(SECRET, ok, BODY.replace("7", "8"), AT), false);
  assert.equal(verifySignedBody(SECRET, { ...ok, timestamp: String(AT + 1) }, BODY, AT), false);
});

Deno.test("verifySignedBody() refuses a delivery outside the tolerance (replays)", () => {
  const headers = { timestamp: String(AT), signature: signBody(SECRET, AT, BODY) };
  const late = AT + DEFAULT_TOLERANCE_SECONDS + 1;
  assert.equal(verifySignedBody(SECRET, headers, BODY, late), false);
  assert.equal(
    verifySignedBody(SECRET, headers, BODY, AT - DEFAULT_TOLERANCE_SECONDS - 1),
    false,
  );
  assert.equal(verifySignedBody(SECRET, headers, BODY, late, 3600), true);
});

Deno.test("verifySignedBody() refuses missing or malformed headers", () => {
  const signature = signBody(SECRET, AT, BODY);
  for (
    const headers of [
      { timestamp: null, signature },
      { timestamp: String(AT), signature: null },
      { timestamp: `${AT}.5`, signature },
      { timestamp: "-1", signature },
      { timestamp: ` ${AT}`, signature },
      { timestamp: String(AT), signature: signature.replace("v1=", "v0=") },
      { timestamp: String(AT), signature: signature.slice(3) },
    ]
  ) {
    assert.equal(verifySignedBody(SECRET, headers, BODY, AT), false, JSON.stringify(headers));
  }
});

Deno.test("signCronCall() is HMAC-SHA256 over `function.timestamp.nonce.body`, hex, as v1=", async () => {
  const nonce = "0b8f1f9e-6a57-4c61-9f58-2d7f0f8a1c11";
  assert.equal(
    signCronCall(SECRET, "cafe24-refresh", AT, nonce, BODY),
    `v1=${await hmacHex(SECRET, `cafe24-refresh.${AT}.${nonce}.${BODY}`)}`,
  );
});

Deno.test("verifyCronCall() accepts its own function's call and refuses any other", () => {
  const nonce = "0b8f1f9e-6a57-4c61-9f58-2d7f0f8a1c11";
  const signature = signCronCall(SECRET, "cafe24-events", AT, nonce, BODY);
  const headers = { timestamp: String(AT), nonce, signature };
  assert.equal(verifyCronCall(SECRET, "cafe24-events", headers, BODY, AT), true);
  assert.equal(verifyCronCall(SECRET, "cafe24-refresh", headers, BODY, AT), false);
  const otherNonce = { ...headers, nonce: "1b8f1f9e-6a57-4c61-9f58-2d7f0f8a1c11" };
  assert.equal(verifyCronCall(SECRET, "cafe24-events", otherNonce, BODY, AT), false);
  assert.equal(
    verifyCronCall(SECRET, "cafe24-events", { ...headers, nonce: null }, BODY, AT),
    false,
  );
  assert.equal(
    verifyCronCall(SECRET, "cafe24-events", { ...headers, nonce: "a.b" }, BODY, AT),
    false,
  );
  assert.equal(
    verifyCronCall(SECRET, "cafe24-events", headers, BODY, AT + DEFAULT_TOLERANCE_SECONDS + 1),
    false,
  );
});
