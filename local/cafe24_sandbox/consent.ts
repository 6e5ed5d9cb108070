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
