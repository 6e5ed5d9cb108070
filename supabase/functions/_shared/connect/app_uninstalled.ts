import type { TokenSeal } from "../platform/token_seal.ts";
import type { Cafe24App } from "../cafe24/app.ts";
import { type AppAccess, classifyAppAccess } from "../cafe24/app_status.ts";
import { isValidMallId } from "../cafe24/mall_id.ts";
import { sendShopsRequest } from "../cafe24/shops.ts";
import { logEvent } from "../platform/log.ts";
import type postgres from "postgres";
import {
  createLifecycleStore,
  type LifecycleStore,
  type RefreshedVerificationTarget,
} from "./lifecycle_store.ts";

/**
 * Cafe24's app notices (webhook events 90077 "app deleted from the shop", 90078 "app expired").
 * How Cafe24 authenticates these deliveries is not documented, so a notice is treated as a hint,
 * never as proof: it makes this project ask Cafe24 itself, with the mall's own access token, and
 * only Cafe24's answer changes anything. What a forged notice can cost is bounded in the
 * database: one verification per mall per 10 minutes (claim_mall_verification_pairs), and none for a
 * mall that has no connection. A verification never refreshes a mall: a refresh rotates the
 * grant, and a notice anyone can send must not rotate anything. When the stored access token is
 * dead (expired, or refused with 401) the verification waits for the mall's next refresh, by the
 * schedule or by cafe24-token (verifyAfterRefresh).
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
}

export interface Verification {
  authSettingsId: string;
  /** Cafe24's answer; null when nothing was asked (the stored access token had expired). */
  access: AppAccess | null;
  /** deferred: the access token is dead, so the verification waits for the next refresh. */
  action: "none" | "disconnected" | "superseded" | "deferred";
}

/** Bodies beyond this are not read: an error message is short. */
const MAX_ANSWER_BYTES = 16 * 1024;

/**
 * Verifies the mall named by a notice, if it is due for a verification; returns what was found
 * for each of its connections, or null when nothing was verified (no connection holding
 * credentials, or one verified within the last 10 minutes): the caller counts those instead of
 * logging each, since anyone can send them.
 */
export async function verifyAfterNotice(
  deps: VerifyDeps,
  notice: AppNotice,
): Promise<Verification[] | null> {
  const targets = await deps.store.claimMallVerification(notice.mallId);
  if (targets.length === 0) return null;
  const results: Verification[] = [];
  let deferred = false;
  for (const target of targets) {
    let verification: Verification;
    if (target.accessToken === null) {
      // claim_mall_verification_pairs already left the mall's verification pending.
      verification = { authSettingsId: target.authSettingsId, access: null, action: "deferred" };
    } else {
      const access = await appAccess(deps, notice.mallId, target.accessToken);
      if (access === "unauthorized") {
        if (!deferred) await deps.store.deferMallVerification(notice.mallId);
        deferred = true;
        verification = { authSettingsId: target.authSettingsId, access, action: "deferred" };
      } else {
        verification = await settle(deps, target.authSettingsId, target.tokenVersion, access);
      }
    }
    results.push(verification);
    logVerification("notice", notice.mallId, verification, notice.eventNo);
  }
  return results;
}

/**
 * Runs the verifications that waited for a refresh (claim_verification_pairs_after_refresh), for every
 * mall refreshed since its notice or only `mallId`; called after a refresh run and after
 * cafe24-token refreshed a connection. One Admin API request per connection, with the access
 * token the refresh just stored.
 */
export async function verifyAfterRefresh(
  deps: VerifyDeps,
  mallId: string | null,
): Promise<Verification[]> {
  const targets: RefreshedVerificationTarget[] = await deps.store.claimVerificationsAfterRefresh(
    mallId,
  );
  const results: Verification[] = [];
  for (const target of targets) {
    const access = await appAccess(deps, target.mallId, target.accessToken);
    const verification = await settle(deps, target.authSettingsId, target.tokenVersion, access);
    results.push(verification);
    logVerification("refresh", target.mallId, verification, null);
  }
  return results;
}

/**
 * verifyAfterRefresh over the database, for the functions that refresh (cafe24-refresh after a
 * run, cafe24-token after a refresh). Never throws: a failure is logged and the verification
 * stays with whoever claimed it.
 */
export async function runVerificationsAfterRefresh(
  sql: postgres.Sql,
  settings: { app: Cafe24App; tokenSeal: TokenSeal },
  mallId: string | null,
): Promise<void> {
  try {
    await verifyAfterRefresh(
      { store: createLifecycleStore(sql, settings.tokenSeal), settings },
      mallId,
    );
  } catch {
    logEvent("error", "cafe24_app_notice_failed", {
      after: "refresh",
      ...(mallId === null ? {} : { mall_id: mallId }),
    });
  }
}

async function settle(
  deps: VerifyDeps,
  authSettingsId: string,
  tokenVersion: string,
  access: AppAccess,
): Promise<Verification> {
  const action = access === "app_deleted"
    ? await deps.store.disconnectIfCurrent(authSettingsId, tokenVersion, APP_UNINSTALLED)
    : "none";
  return { authSettingsId, access, action };
}

function logVerification(
  after: "notice" | "refresh",
  mallId: string,
  verification: Verification,
  eventNo: AppNoticeEvent | null,
): void {
  logEvent(verification.action === "disconnected" ? "warn" : "info", "cafe24_app_notice", {
    ...(eventNo === null ? {} : { event_no: eventNo }),
    mall_id: mallId,
    auth_settings_id: verification.authSettingsId,
    outcome: verification.action === "deferred" ? "deferred" : "verified",
    after,
    access: verification.access,
    action: verification.action,
  });
}

/** One Admin API call (the shop list, the cheapest read) and what its answer says. */
async function appAccess(
  deps: VerifyDeps,
  mallId: string,
  accessToken: string,
): Promise<AppAccess> {
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
