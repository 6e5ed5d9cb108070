import type postgres from "postgres";

/**
 * A mall's Admin API rate limit as every process of the app shares it: the bucket lives in
 * cafe24_private.api_buckets (supabase/schemas/90_admin_api.sql) and each slot is one call of
 * take_api_slot. Within a process, callers of one mall queue behind each other and only the first
 * asks the database, sleeping the wait it was told: the database sees about one attempt per
 * process per slot, never a poll in a loop.
 */

export interface BucketSettings {
  bucketCapacity: number;
  bucketDrainPerS: number;
  maxPerS: number;
}

export interface SlotAttempt {
  granted: boolean;
  /** When not granted: how long until a slot may be free. */
  waitMs: number;
  /** The modelled level once the slot was taken. */
  level: number;
}

export interface BucketStore {
  take(mallId: string, settings: BucketSettings): Promise<SlotAttempt>;
  /** What an answer's headers said (see noteFromHeaders); one statement. */
  note(mallId: string, note: BucketNote, settings: BucketSettings): Promise<void>;
}

export interface BucketNote {
  used: number | null;
  capacity: number | null;
  blockedMs: number | null;
}

/**
 * Calls of the capacity kept spare: the model counts a call when its slot is taken, Cafe24 when
 * it arrives, and the two drift by the difference in travel times.
 */
export const BUCKET_MARGIN = 1;

const stores = new WeakMap<postgres.Sql, BucketStore>();

export function createBucketStore(sql: postgres.Sql): BucketStore {
  let store = stores.get(sql);
  if (store === undefined) {
    store = {
      async take(mallId, settings) {
        const [row] = await sql<{ granted: boolean; wait_ms: number; level: number }[]>`
          select * from cafe24_private.take_api_slot(${mallId}, ${settings.bucketCapacity},
            ${settings.bucketDrainPerS}, ${settings.maxPerS}, ${BUCKET_MARGIN})`;
        return { granted: row!.granted, waitMs: row!.wait_ms, level: row!.level };
      },
      async note(mallId, note, settings) {
        await sql`
          select cafe24_private.note_api_answer(${mallId}, ${note.used}, ${note.capacity},
            ${settings.bucketDrainPerS}, ${note.blockedMs})`;
      },
    };
    stores.set(sql, store);
  }
  return store;
}

/**
 * What Cafe24's headers say about the mall's bucket: `X-Api-Call-Limit: used/capacity`, and for
 * a 429 (or a usage reported at 100%) how long to hold off, from `Retry-After`, else
 * `X-Cafe24-Call-Remain` / `X-Cafe24-Time-Remain` (seconds), else one drain step. Null when the
 * answer says nothing about the bucket.
 */
export function noteFromHeaders(
  status: number,
  headers: Headers,
  drainPerS: number,
): BucketNote | null {
  const limit = /^\s*(\d{1,6})\s*\/\s*(\d{1,6})\s*$/.exec(headers.get("x-api-call-limit") ?? "");
  const used = limit === null ? null : Number(limit[1]);
  const capacity = limit === null || Number(limit[2]) === 0 ? null : Number(limit[2]);
  const full = Number(headers.get("x-cafe24-call-usage")) >= 100 ||
    Number(headers.get("x-cafe24-time-usage")) >= 100;
  const blockedMs = status === 429
    ? retryWaitMs(headers, drainPerS)
    : full
    ? remainMs(headers)
    : null;
  if (used === null && blockedMs === null) return null;
  return { used, capacity, blockedMs };
}

/** How long a 429 asks to wait: Retry-After, else the Remain headers, else one drain step. */
export function retryWaitMs(headers: Headers, drainPerS: number): number {
  const retryAfter = seconds(headers.get("retry-after"));
  if (retryAfter !== null) return retryAfter * 1000;
  return remainMs(headers) ?? Math.ceil(1000 / drainPerS);
}

function remainMs(headers: Headers): number | null {
  const call = seconds(headers.get("x-cafe24-call-remain"));
  const time = seconds(headers.get("x-cafe24-time-remain"));
  if (call === null && time === null) return null;
  return Math.max(call ?? 0, time ?? 0) * 1000;
}

function seconds(value: string | null): number | null {
  if (value === null || !/^\s*\d{1,5}(\.\d+)?\s*$/.test(value)) return null;
  return Number(value);
}

export interface SlotClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemSlotClock: SlotClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** Each mall's queue in this process: the tail every new caller waits behind. */
const queues = new Map<string, Promise<void>>();

/**
 * Waits for a slot of the mall's bucket until `deadline` (clock time). Returns the slot, or the
 * milliseconds after which one may be free when the deadline comes first (no call is made then).
 */
export async function waitForSlot(
  store: BucketStore,
  mallId: string,
  settings: BucketSettings,
  deadline: number,
  clock: SlotClock = systemSlotClock,
): Promise<{ granted: true; level: number; takenAt: number } | { granted: false; waitMs: number }> {
  const previous = queues.get(mallId) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => (release = resolve));
  const tail = previous.then(() => mine);
  queues.set(mallId, tail);
  try {
    // The caller ahead may hold the queue until its own deadline; this one gives up at its own.
    const left = deadline - clock.now();
    const first = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.max(0, left));
      previous.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!first) return { granted: false, waitMs: Math.max(1, Math.ceil(1000 / settings.maxPerS)) };
    for (;;) {
      const attempt = await store.take(mallId, settings);
      if (attempt.granted) return { granted: true, level: attempt.level, takenAt: clock.now() };
      const remaining = deadline - clock.now();
      if (attempt.waitMs > remaining) return { granted: false, waitMs: attempt.waitMs };
      await clock.sleep(attempt.waitMs);
    }
  } finally {
    release();
    if (queues.get(mallId) === tail) queues.delete(mallId);
  }
}
