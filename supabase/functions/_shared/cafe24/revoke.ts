import { type Cafe24App, clientAuthorization } from "./app.ts";
import { mallApiUrl } from "./mall_id.ts";

/**
 * Cafe24's token revocation: `POST /api/v2/oauth/revoke`, Basic client authentication as for the
 * token endpoint, form `token` and Cafe24's own `token_hint` (not RFC 7009's token_type_hint).
 * Revoking either half of a pair revokes the pair; 200 with an empty body means done.
 */

export type TokenHint = "access_token" | "refresh_token";

export type RevokeOutcome = "revoked" | "rejected" | "unreachable";

/** Never throws for Cafe24's answer; a mall id that would leave Cafe24's host throws RangeError. */
export async function revokeToken(
  app: Cafe24App,
  mallId: string,
  token: string,
  hint: TokenHint,
): Promise<RevokeOutcome> {
  const url = mallApiUrl(app.apiBaseUrl, mallId, "api/v2/oauth/revoke");
  try {
    const response = await (app.fetch ?? fetch)(url, {
      method: "POST",
      headers: {
        "Authorization": clientAuthorization(app),
        "Content-Type": "application/x-www-form-urlencoded",
      },
      body: new URLSearchParams({ token, token_hint: hint }),
      signal: AbortSignal.timeout(app.requestTimeoutMs),
      redirect: "manual",
    });
    await response.body?.cancel();
    return response.ok ? "revoked" : "rejected";
  } catch {
    return "unreachable";
  }
}

/**
 * Revokes a stored pair: the refresh token first (the long-lived credential, and the one that
 * matters if the access token has already expired), then the access token if Cafe24 refused the
 * first. Returns the first success, else the last outcome.
 */
export async function revokePair(
  app: Cafe24App,
  mallId: string,
  pair: { access_token?: unknown; refresh_token?: unknown },
): Promise<RevokeOutcome> {
  let outcome: RevokeOutcome = "rejected";
  const halves: [unknown, TokenHint][] = [
    [pair.refresh_token, "refresh_token"],
    [pair.access_token, "access_token"],
  ];
  for (const [token, hint] of halves) {
    if (typeof token !== "string" || token === "") continue;
    outcome = await revokeToken(app, mallId, token, hint);
    if (outcome === "revoked") return outcome;
  }
  return outcome;
}
