import type { Cafe24App } from "../cafe24/app.ts";
import { type AppAccess, classifyAppAccess } from "../cafe24/app_status.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { sendShopsRequest } from "../cafe24/shops.ts";
import { logEvent } from "../platform/log.ts";
import type { LifecycleStore } from "./lifecycle_store.ts";

/**
 * Cafe24's app notices (webhook events 90077 "app deleted from the shop", 90078 "app expired").
 * How Cafe24 authenticates these deliveries is not documented, so a notice is treated as a hint,
 * never as proof: it makes this project ask Cafe24 itself, with the mall's own access token, and
 * only Cafe24's answer changes anything. What a forged notice can cost is bounded in the
 * database: one verification per mall per 10 minutes (claim_mall_verification), and none for a
 * mall that has no connection.
 */

export const APP_NOTICE_EVENTS = [90077, 90078] as const;
export type AppNoticeEvent = (typeof APP_NOTICE_EVENTS)[number];

export interface AppNotice {
  eventNo: AppNoticeEvent;
  mallId: string;
}

/** The disconnect reason when Cafe24 confirms the app is gone. */
export const APP_UNINSTALLED = "APP_UNINSTALLED";

/**
 * The notice in a webhook body, or null for anything to ignore: not JSON, another event, no valid
 * mall id, or a client_id that is not this app's (when the notice carries one).
 */
export function parseAppNotice(body: string, clientId: string): AppNotice | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return null;
  const { event_no: eventNo, resource } = parsed as Record<string, unknown>;
  const number = typeof eventNo === "string" && /^\d{1,9}$/.test(eventNo)
    ? Number(eventNo)
    : eventNo;
  if (!APP_NOTICE_EVENTS.includes(number as AppNoticeEvent)) return null;
  if (resource === null || typeof resource !== "object" || Array.isArray(resource)) return null;
  const { mall_id: mallId, client_id: noticeClientId } = resource as Record<string, unknown>;
  if (!isValidMallId(mallId)) return null;
  if (noticeClientId !== undefined && noticeClientId !== null && noticeClientId !== clientId) {
    return null;
  }
  return { eventNo: number as AppNoticeEvent, mallId };
}

export interface VerifyDeps {
  store: LifecycleStore;
  settings: { app: Cafe24App };
  /** Refreshes this one mall now (a forced run limited to it). */
  refreshMall: (mallId: string) => Promise<void>;
}

export interface Verification {
  authSettingsId: string;
  access: AppAccess;
  /** A 401 led to a refresh and a second look with the new access token. */
  refreshed: boolean;
  action: "none" | "disconnected" | "superseded";
}

/** Bodies beyond this are not read: an error message is short. */
const MAX_ANSWER_BYTES = 16 * 1024;

/**
 * Verifies the mall named by a notice, if it is due for a verification; returns what was found
 * for each of its connections, or null when nothing was verified (no connection holding
 * credentials, or one verified within the last 10 minutes).
 */
export async function verifyAfterNotice(
  deps: VerifyDeps,
  notice: AppNotice,
): Promise<Verification[] | null> {
  const targets = await deps.store.claimMallVerification(notice.mallId);
  if (targets.length === 0) {
    logEvent("info", "cafe24_app_notice", {
      event_no: notice.eventNo,
      mall_id: notice.mallId,
      outcome: "not_verified",
    });
    return null;
  }
  const results: Verification[] = [];
  for (const target of targets) {
    let accessToken = target.accessToken;
    let access = await appAccess(deps, notice.mallId, accessToken);
    let refreshed = false;
    if (access === "unauthorized") {
      // The stored access token is dead; a refresh tells whether the grant still lives, and a
      // fresh token lets Cafe24 answer the question itself.
      await deps.refreshMall(notice.mallId).catch(() => {});
      const current = await deps.store.accessToken(target.authSettingsId);
      if (current !== null && current !== accessToken) {
        refreshed = true;
        accessToken = current;
        access = await appAccess(deps, notice.mallId, accessToken);
      }
    }
    const action = access === "app_deleted"
      ? await deps.store.disconnectIfCurrent(target.authSettingsId, accessToken, APP_UNINSTALLED)
      : "none";
    results.push({ authSettingsId: target.authSettingsId, access, refreshed, action });
    logEvent(action === "disconnected" ? "warn" : "info", "cafe24_app_notice", {
      event_no: notice.eventNo,
      mall_id: notice.mallId,
      auth_settings_id: target.authSettingsId,
      outcome: "verified",
      access,
      refreshed,
      action,
    });
  }
  return results;
}

/** One Admin API call (the shop list, the cheapest read) and what its answer says. */
async function appAccess(deps: VerifyDeps, mallId: string, accessToken: string) {
  let response: Response;
  try {
    response = await sendShopsRequest(deps.settings.app, { mallId, accessToken });
  } catch {
    return "unknown";
  }
  let body = "";
  try {
    const bytes = new Uint8Array(await response.arrayBuffer());
    body = new TextDecoder().decode(bytes.subarray(0, MAX_ANSWER_BYTES));
  } catch {
    // Classified from the status alone.
  }
  return classifyAppAccess(response.status, body);
}
