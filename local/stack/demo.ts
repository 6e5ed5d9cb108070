/**
 * The demo connections the local stack seeds when it runs against the Cafe24 sandbox: one
 * auth_settings row per demo user, tokens issued by the sandbox, expiries staggered so that runs
 * have something to do now and over the next hour, plus one dead refresh token and one row the
 * refresher must skip. Rows have fixed ids and are re-created on every start: the sandbox keeps its
 * tokens in memory, so the previous session's tokens mean nothing to a new sandbox.
 */
import type postgres from "postgres";
import type { Cafe24Sandbox } from "../cafe24_sandbox.ts";

const MINUTE_MS = 60_000;
const REFRESH_TOKEN_LIFETIME_MS = 14 * 24 * 60 * MINUTE_MS;

export interface DemoConnection {
  id: string;
  userId: string;
  email: string;
  /** null for the malformed row. */
  mallId: string | null;
  /** What the refresher is expected to do with it. */
  expect: "refresh_now" | "refresh_later" | "reconnect_required" | "skip_malformed";
  note: string;
}

interface DemoSpec {
  n: number;
  mallId: string;
  expect: DemoConnection["expect"];
  note: string;
  /** Access token lifetime from now, given the refresh margin. */
  accessLifetimeMs?: (marginMs: number) => number;
  /** Store expires_at as Cafe24 sends it (Korea time, no offset), as older code did. */
  legacyExpiry?: boolean;
  dead?: boolean;
  malformed?: boolean;
}

const SPECS: DemoSpec[] = [
  {
    n: 1,
    mallId: "demoexpired",
    expect: "refresh_now",
    note: "access token expired 10 min ago",
    accessLifetimeMs: () => -10 * MINUTE_MS,
  },
  {
    n: 2,
    mallId: "demonow",
    expect: "refresh_now",
    note: "expires inside the refresh margin",
    accessLifetimeMs: (margin) => Math.floor(margin / 2),
  },
  {
    n: 3,
    mallId: "demolegacy",
    expect: "refresh_now",
    note: "expiry stored without offset (legacy): unknown, so due",
    legacyExpiry: true,
  },
  {
    n: 4,
    mallId: "demo10min",
    expect: "refresh_later",
    note: "due in 10 min",
    accessLifetimeMs: (margin) => margin + 10 * MINUTE_MS,
  },
  {
    n: 5,
    mallId: "demo20min",
    expect: "refresh_later",
    note: "due in 20 min",
    accessLifetimeMs: (margin) => margin + 20 * MINUTE_MS,
  },
  {
    n: 6,
    mallId: "demo40min",
    expect: "refresh_later",
    note: "due in 40 min",
    accessLifetimeMs: (margin) => margin + 40 * MINUTE_MS,
  },
  {
    n: 7,
    mallId: "demodead",
    expect: "reconnect_required",
    note: "refresh token revoked at Cafe24",
    accessLifetimeMs: () => 5 * MINUTE_MS,
    dead: true,
  },
  {
    n: 8,
    mallId: "demobroken",
    expect: "skip_malformed",
    note: "providers.cafe24.refresh_token is a number",
    malformed: true,
  },
];

const hex = (n: number) => n.toString(16).padStart(12, "0");
const rowId = (n: number) => `00000000-0000-4000-a000-${hex(n)}`;
const userId = (n: number) => `00000000-0000-4000-b000-${hex(n)}`;

export const DEMO_ROW_IDS: readonly string[] = SPECS.map((s) => rowId(s.n));

/** Removes the demo rows (their connections go with them). */
export async function removeDemoConnections(sql: postgres.Sql): Promise<void> {
  await sql`delete from public.auth_settings where id = any(${DEMO_ROW_IDS as string[]}::uuid[])`;
}

export async function seedDemoConnections(
  sql: postgres.Sql,
  sandbox: Cafe24Sandbox,
  refreshMarginMs: number,
): Promise<DemoConnection[]> {
  const seeded: DemoConnection[] = [];
  await sql.begin(async (tx) => {
    await tx`delete from public.auth_settings where id = any(${DEMO_ROW_IDS as string[]}::uuid[])`;
    for (const spec of SPECS) {
      const id = rowId(spec.n);
      const user = userId(spec.n);
      const email = `${spec.mallId}@demo.local`;
      await tx`
        insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data)
        values (${user}, 'authenticated', 'authenticated', ${email}, now(),
          '{"provider":"email","providers":["email"]}'::jsonb)
        on conflict (id) do nothing`;
      let cafe24: Record<string, unknown>;
      if (spec.malformed) {
        cafe24 = { mall_id: spec.mallId, refresh_token: 12345, shop_no: 1 };
      } else {
        const now = Date.now();
        const lifetime = spec.accessLifetimeMs?.(refreshMarginMs) ?? 2 * 60 * MINUTE_MS;
        sandbox.addMall(spec.mallId);
        const tokens = sandbox.issueTokens(spec.mallId, { accessTokenLifetimeMs: lifetime });
        if (spec.dead) sandbox.revokeRefreshToken(spec.mallId);
        cafe24 = {
          mall_id: spec.mallId,
          access_token: tokens.accessToken,
          refresh_token: tokens.refreshToken,
          expires_at: spec.legacyExpiry ? tokens.expiresAt : new Date(now + lifetime).toISOString(),
          refresh_token_expires_at: spec.legacyExpiry
            ? tokens.refreshTokenExpiresAt
            : new Date(now + REFRESH_TOKEN_LIFETIME_MS).toISOString(),
          scopes: tokens.scopes,
          shop_no: 1,
        };
      }
      await tx`
        insert into public.auth_settings (id, user_id, providers)
        values (${id}, ${user}, ${tx.json({ cafe24 } as postgres.JSONValue)})`;
      seeded.push({
        id,
        userId: user,
        email,
        mallId: spec.malformed ? null : spec.mallId,
        expect: spec.expect,
        note: spec.note,
      });
    }
  });
  return seeded;
}
