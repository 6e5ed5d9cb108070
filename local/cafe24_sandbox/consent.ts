// The consent page that stands in for Cafe24's app-install screen in browser tests: the mall, the
// app and the scopes, and two buttons that post the owner's decision back to the sandbox.

import { htmlResponse } from "./util.ts";

/**
 * No scripts, no external resources, and no framing by any origin (a consent screen inside
 * someone else's frame is a clickjacking target). Inline style only; forms may post anywhere
 * because the decision's answer redirects to the app.
 */
const CONSENT_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
  "referrer-policy": "no-referrer",
};

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Scopes come from the query string: everything shown is escaped. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

export interface ConsentView {
  mallId: string;
  clientId: string;
  scopes: string[];
  /** Where the form posts: the mall's authorize URL path. */
  action: string;
  /** The pending request's id, posted back with the decision. */
  consentId: string;
}

export function consentPage(view: ConsentView): Response {
  const scopes = view.scopes.map((scope) => `<li>${escapeHtml(scope)}</li>`).join("");
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Install app - ${escapeHtml(view.mallId)}</title>
<style>body{font-family:sans-serif;max-width:32rem;margin:2rem auto}button{margin-right:1rem}</style>
</head>
<body>
<h1>Install app on <span id="mall">${escapeHtml(view.mallId)}</span></h1>
<p>App (client id): <code id="client-id">${escapeHtml(view.clientId)}</code></p>
<p>Requested permissions:</p>
<ul id="scopes">${scopes}</ul>
<form method="post" action="${escapeHtml(view.action)}">
<input type="hidden" name="consent" value="${escapeHtml(view.consentId)}">
<button type="submit" id="approve" name="decision" value="approve">Approve</button>
<button type="submit" id="deny" name="decision" value="deny">Deny</button>
</form>
</body>
</html>
`;
  return htmlResponse(200, html, CONSENT_HEADERS);
}

/**
 * What a browser sent to the authorize page of a mall that does not exist sees: an HTML page of
 * "Cafe24's" own, in both languages, with a way back to the app (the page it came from, when the
 * browser said which), as Cafe24 shows its own error page rather than an API error.
 */
export function unknownMallPage(mallId: string, referer: string | null): Response {
  let back: string | null = null;
  try {
    const url = referer === null ? null : new URL(referer);
    if (url !== null && (url.protocol === "http:" || url.protocol === "https:")) back = url.href;
  } catch { /* not a URL: no link */ }
  const link = back === null
    ? `<p>브라우저의 뒤로 가기로 앱에 돌아가세요. <span lang="en">Use your browser's Back button ` +
      `to return to the app.</span></p>`
    : `<p><a id="back" href="${escapeHtml(back)}">앱으로 돌아가기 · ` +
      `<span lang="en">Back to the app</span></a></p>`;
  const html = `<!DOCTYPE html>
<html lang="ko">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>쇼핑몰을 찾을 수 없습니다 · Mall not found</title>
<style>body{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}</style>
</head>
<body>
<h1 id="not-found">쇼핑몰을 찾을 수 없습니다 <span lang="en">· Mall not found</span></h1>
<p>카페24에 <code id="mall">${
    escapeHtml(mallId)
  }</code> 쇼핑몰이 없습니다. 쇼핑몰 ID를 확인해 주세요.</p>
<p lang="en">Cafe24 has no mall <code>${escapeHtml(mallId)}</code>. Check the mall ID.</p>
${link}
</body>
</html>
`;
  return htmlResponse(404, html, CONSENT_HEADERS);
}
