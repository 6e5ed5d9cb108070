import type { CallbackOutcome } from "./callback.ts";
import { REQUEST_ERRORS } from "../platform/errors.ts";
import { redirectResponse } from "../platform/http.ts";

/**
 * How cafe24-callback's GET ends: a 302 back to the app (CAFE24_APP_RETURN_URL) with
 * `#cafe24=pending&handle=…&mall_id=…` or `?cafe24=error&reason=CODE`, or, when that setting is
 * missing, a small self-contained page. None carries a token, a code or the state.
 *
 * Hosted Supabase serves `text/html` from functions as `text/plain` on its default domain, so the
 * page is written to read well as text too; set CAFE24_APP_RETURN_URL in production.
 */
export function connectResponse(
  outcome: CallbackOutcome,
  returnUrl: string | null,
  headers: Record<string, string> = {},
): Response {
  if (returnUrl === null) {
    // Only reachable when CAFE24_APP_RETURN_URL is unset: nothing can complete a connection then.
    const reason = outcome.ok ? "CONFIG_MISSING" : outcome.reason;
    return htmlPage(REQUEST_ERRORS[reason].status, "Cafe24 mall not connected", [
      REQUEST_ERRORS[reason].message,
      `Reason: ${reason}`,
    ], headers);
  }
  const url = new URL(returnUrl);
  if (outcome.ok) {
    // In the fragment: browsers never send it to a server, so the handle stays out of access
    // logs, analytics and Referer headers. The app reads it and removes it from its address bar.
    url.hash = new URLSearchParams({
      cafe24: "pending",
      handle: outcome.handle,
      mall_id: outcome.mallId,
    }).toString();
  } else {
    url.hash = "";
    url.searchParams.set("cafe24", "error");
    url.searchParams.set("reason", outcome.reason);
  }
  return redirectResponse(url, headers);
}

function htmlPage(
  status: number,
  title: string,
  lines: string[],
  headers: Record<string, string>,
): Response {
  const body = [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}</style>",
    "</head><body>",
    `<h1>${escapeHtml(title)}</h1>`,
    ...lines.map((line) => `<p>${escapeHtml(line)}</p>`),
    "</body></html>",
    "",
  ].join("\n");
  return new Response(body, {
    status,
    headers: {
      ...headers,
      "Content-Type": "text/html; charset=utf-8",
      "Cache-Control": "no-store",
      "Referrer-Policy": "no-referrer",
      "X-Content-Type-Options": "nosniff",
      "Content-Security-Policy":
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    },
  });
}

function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&#39;");
}
