import assert from "node:assert/strict";
import { readBodyText } from "../../../supabase/functions/_shared/platform/body.ts";

const post = (body: BodyInit | null, headers: Record<string, string> = {}) =>
  new Request("https://functions.example/cafe24-webhook", { method: "POST", body, headers });

/** A body sent in chunks without Content-Length, counting what was pulled from it. */
function chunked(chunks: number, size: number): { request: Request; pulled: () => number } {
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (pulled >= chunks) return controller.close();
      pulled++;
      controller.enqueue(new Uint8Array(size).fill(120));
    },
  });
  return { request: post(stream), pulled: () => pulled };
}

Deno.test("readBodyText() returns a body up to the limit, exactly", async () => {
  assert.equal(await readBodyText(post("x".repeat(16)), 16), "x".repeat(16));
  assert.equal(await readBodyText(post("한글"), 16), "한글");
  assert.equal(await readBodyText(post(null), 16), "");
});

Deno.test("readBodyText() refuses a declared length over the limit before reading", async () => {
  const { request, pulled } = chunked(4, 8);
  const declared = new Request(request, { headers: { "content-length": "17" } });
  assert.equal(await readBodyText(declared, 16), null);
  // A stream fills its one-chunk queue on its own; nothing beyond that was pulled.
  assert.ok(pulled() <= 1, `pulled ${pulled()} chunks`);
  assert.equal(await readBodyText(post("x", { "content-length": "not a number" }), 16), null);
});

Deno.test("readBodyText() stops reading a chunked body one chunk past the limit", async () => {
  const { request, pulled } = chunked(1000, 1024);
  assert.equal(await readBodyText(request, 16 * 1024), null);
  assert.ok(pulled() <= 18, `pulled ${pulled()} chunks`);
});
