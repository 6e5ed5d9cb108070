/**
 * The settings page as `npm start` runs it: signed in through the local Auth stand-in as the owner
 * of a demo connection, the mall whose refresh token is dead pre-filled, so that connecting it
 * again takes a sign-in and a click (plus Approve when the sandbox shows its consent page).
 */
import type { LocalAuth } from "../supabase/auth_stand_in.ts";
import type { DemoConnection } from "../stack/demo.ts";
import { type DemoUser, type SettingsPage, startSettingsPage } from "./server.ts";

/** A user with no connection, to connect any mall from scratch. */
const NEWCOMER: DemoUser = {
  key: "developer",
  id: "00000000-0000-4000-b000-0000000000ff",
  email: "developer@demo.local",
  label: "developer@demo.local (no mall yet)",
};

export function startLocalSettingsPage(options: {
  hostname: string;
  /** `--settings-port`: checked free before (npm start says which flag moves it); 0 = any. */
  port: number;
  supabaseUrl: string;
  anonKey: string;
  auth: LocalAuth;
  demo: DemoConnection[];
  /** CAFE24_SCOPES, comma-separated. */
  scopes: string;
  /** The stack's control token: the banner's link carries it, sign-in wants it. */
  controlToken: string;
}): SettingsPage {
  const owners: DemoUser[] = options.demo
    .filter((d) => d.mallId !== null)
    .sort((a, b) =>
      Number(b.expect === "reconnect_required") - Number(a.expect === "reconnect_required")
    )
    .map((d) => ({
      key: d.mallId!,
      id: d.userId,
      email: d.email,
      label: `${d.email} (${d.note})`,
    }));
  const dead = options.demo.find((d) => d.expect === "reconnect_required");
  return startSettingsPage({
    hostname: options.hostname,
    port: options.port,
    supabaseUrl: options.supabaseUrl,
    anonKey: options.anonKey,
    demoUsers: [...owners, NEWCOMER],
    mintAccessToken: (user, ttlSeconds) => options.auth.mintUserToken(user, ttlSeconds),
    controlToken: options.controlToken,
    defaultMallId: dead?.mallId ?? "",
    scopes: options.scopes.split(",").map((s) => s.trim()).filter((s) => s !== ""),
  });
}
