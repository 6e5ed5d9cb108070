import type { ConnectOutcome } from "./callback.ts";
import { CONNECT_WARNINGS, REQUEST_ERRORS } from "../platform/errors.ts";
import { redirectResponse } from "../platform/http.ts";

/**
 * How cafe24-callback ends: a 302 back to the app (CAFE24_APP_RETURN_URL) with
 * `?cafe24=connected&mall_id=…` or `?cafe24=error&reason=CODE`, or without that setting a small
 * self-contained page. Neither carries a token, a code or the state.
 *
 * Hosted Supabase serves `text/html` from functions as `text/plain` on its default domain, so the
 * page is written to read well as text too; set CAFE24_APP_RETURN_URL in production.
 */
export function connectResponse(
  outcome: ConnectOutcome,
  returnUrl: string | null,
  headers: Record<string, string> = {},
): Response {
  if (returnUrl !== null) {
    const url = new URL(returnUrl);
    if (outcome.ok) {
      url.searchParams.set("cafe24", "connected");
      url.searchParams.set("mall_id", outcome.mallId);
      if (outcome.warning !== null) url.searchParams.set("warning", outcome.warning);
    } else {
      url.searchParams.set("cafe24", "error");
      url.searchParams.set("reason", outcome.reason);
    }
    return redirectResponse(url, headers);
  }

  const [status, title, lines] = outcome.ok
    ? [
      200,
      "Cafe24 mall connected",
      [
        `The mall ${outcome.mallId} is now connected. You can close this window.`,
        ...(outcome.warning === null ? [] : [CONNECT_WARNINGS[outcome.warning].message]),
      ],
    ]
    : [
      REQUEST_ERRORS[outcome.reason].status,
      "Cafe24 mall not connected",
      [REQUEST_ERRORS[outcome.reason].message, `Reason: ${outcome.reason}`],
    ];
  return htmlPage(status, title, lines, headers);
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
