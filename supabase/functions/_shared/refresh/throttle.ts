import type postgres from "postgres";

/**
 * "Refresh now" from a signed-in user starts at most one refresh per
 * CAFE24_USER_REFRESH_INTERVAL_S. The check and the record are one SQL call
 * (cafe24_private.start_user_refresh), so the limit holds across function instances and two
 * clicks at the same moment start one refresh, not two.
 */
export type UserRefreshStart =
  | { allowed: true }
  | { allowed: false; retryAfterSeconds: number };

export interface UserRefreshThrottle {
  tryStart(userId: string, intervalSeconds: number): Promise<UserRefreshStart>;
}

export function createUserRefreshThrottle(sql: postgres.Sql): UserRefreshThrottle {
  return {
    async tryStart(userId, intervalSeconds) {
      const [row] = await sql<{ allowed: boolean; retry_after_seconds: number }[]>`
        select * from cafe24_private.start_user_refresh(
          ${userId}::uuid, ${`${intervalSeconds} seconds`}::interval)`;
      return row!.allowed
        ? { allowed: true }
        : { allowed: false, retryAfterSeconds: row!.retry_after_seconds };
    },
  };
}
