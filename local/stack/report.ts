/**
 * Terminal rendering for the local scripts: one line per refresh run, the connection status table
 * (from cafe24_private.connection_status) and relative times. Plain text; colour only on a
 * terminal and without NO_COLOR.
 */
import type postgres from "postgres";
import { RUN_SUMMARY_KEYS, SKIP_REASONS } from "../../supabase/functions/_shared/refresh/run.ts";

export interface Paint {
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

export function paint(enabled: boolean): Paint {
  const wrap = (code: number) => (s: string) => enabled ? `\x1b[${code}m${s}\x1b[0m` : s;
  return { green: wrap(32), red: wrap(31), yellow: wrap(33), dim: wrap(2), bold: wrap(1) };
}

export function colourWanted(file: { isTerminal(): boolean }): boolean {
  return file.isTerminal() && (Deno.env.get("NO_COLOR") ?? "") === "";
}

/** "in 1h29m", "3m ago", "now", "-" for null. */
export function relativeTime(at: Date | null, nowMs: number): string {
  if (at === null) return "-";
  const ms = at.getTime();
  if (!Number.isFinite(ms)) return ms > 0 ? "never" : "-";
  const delta = ms - nowMs;
  const abs = Math.abs(delta);
  if (abs < 30_000) return "now";
  const minutes = Math.round(abs / 60_000);
  let text: string;
  if (minutes < 60) text = `${minutes}m`;
  else if (minutes < 48 * 60) {
    const h = Math.floor(minutes / 60);
    const m = minutes % 60;
    text = m === 0 ? `${h}h` : `${h}h${String(m).padStart(2, "0")}m`;
  } else text = `${Math.round(minutes / (24 * 60))}d`;
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

export function clockTime(at: Date): string {
  return at.toTimeString().slice(0, 8);
}

export interface ConnectionRow {
  auth_settings_id: string;
  mall_id: string | null;
  row_state: string;
  status: string;
  access_expires_at: Date | null;
  refresh_expires_at: Date | null;
  last_refreshed_at: Date | null;
  last_error_code: string | null;
  consecutive_failures: number;
  next_attempt_at: Date | null;
  refreshing_now: boolean | null;
}

export async function readConnections(sql: postgres.Sql): Promise<ConnectionRow[]> {
  return await sql<ConnectionRow[]>`
    select auth_settings_id, mall_id, row_state, status, access_expires_at, refresh_expires_at,
      last_refreshed_at, last_error_code, consecutive_failures, next_attempt_at, refreshing_now
    from cafe24_private.connection_status
    order by mall_id nulls last, auth_settings_id`;
}

function pad(cells: string[][], colour: (row: number, col: number, s: string) => string): string[] {
  const widths = cells[0]!.map((_, col) => Math.max(...cells.map((r) => r[col]!.length)));
  return cells.map((row, r) =>
    "  " + row.map((cell, c) => colour(r, c, cell.padEnd(widths[c]!))).join("  ").trimEnd()
  );
}

/** The compact table: one line per connection; at most `limit` rows, then a count. */
export function connectionTable(
  rows: ConnectionRow[],
  nowMs: number,
  p: Paint,
  limit = 25,
): string {
  if (rows.length === 0) return "  (no connections yet)";
  const header = [
    "mall",
    "status",
    "access expires",
    "refresh token",
    "last refreshed",
    "fails",
    "next try",
    "last error",
  ];
  const shown = rows.slice(0, limit);
  const cells = [
    header,
    ...shown.map((r) => [
      r.mall_id ?? "(none)",
      r.row_state === "ok" ? (r.refreshing_now ? "refreshing" : r.status) : r.row_state,
      relativeTime(r.access_expires_at, nowMs),
      relativeTime(r.refresh_expires_at, nowMs),
      relativeTime(r.last_refreshed_at, nowMs),
      String(r.consecutive_failures),
      relativeTime(r.next_attempt_at, nowMs),
      r.last_error_code ?? "",
    ]),
  ];
  const lines = pad(cells, (row, col, s) => {
    if (row === 0) return p.dim(s);
    if (col !== 1) return s;
    if (s.startsWith("active") || s.startsWith("refreshing")) return p.green(s);
    if (s.startsWith("reconnect_required")) return p.red(s);
    return p.yellow(s);
  });
  if (rows.length > shown.length) lines.push(p.dim(`  … and ${rows.length - shown.length} more`));
  return lines.join("\n");
}

export interface RunRow {
  id: string;
  trigger: string;
  mode: string;
  status: string;
  started_at: Date;
  finished_at: Date | null;
  summary: RunSummaryLike | null;
}

export interface RunSummaryLike {
  scanned?: number;
  eligible?: number;
  due?: number;
  refreshed?: number;
  failed?: number;
  skipped?: number;
  remaining?: number;
  duration_ms?: number;
  failures?: { id: string; reason: string }[];
  skipped_reasons?: Record<string, number>;
}

export function runStartedLine(run: RunRow, p: Paint): string {
  return `${p.dim(clockTime(run.started_at))}  ${run.trigger.padEnd(6)} run ${
    run.id.slice(0, 8)
  }  ${p.dim("started")}`;
}

/** The finished line, then one line per failure (`malls` maps connection ids to mall ids). */
export function runFinishedLines(
  run: RunRow,
  malls: Map<string, string | null>,
  p: Paint,
): string[] {
  const s = run.summary ?? {};
  const when = p.dim(clockTime(run.finished_at ?? run.started_at));
  const head = `${when}  ${run.trigger.padEnd(6)} run ${run.id.slice(0, 8)}  `;
  if (run.status !== "finished") {
    return [
      `${head}${p.red(run.status)}` +
      (s.refreshed !== undefined ? ` · refreshed ${s.refreshed} · failed ${s.failed ?? 0}` : ""),
    ];
  }
  const skippedDetail = Object.entries(s.skipped_reasons ?? {})
    .filter(([, n]) => n > 0)
    .map(([reason, n]) => `${reason} ${n}`)
    .join(", ");
  const failed = s.failed ?? 0;
  const parts = [
    `due ${s.due ?? 0}`,
    (s.refreshed ?? 0) > 0 ? p.green(`refreshed ${s.refreshed}`) : `refreshed ${s.refreshed ?? 0}`,
    failed > 0 ? p.red(`failed ${failed}`) : `failed 0`,
    `skipped ${s.skipped ?? 0}${skippedDetail === "" ? "" : ` (${skippedDetail})`}`,
    ...((s.remaining ?? 0) > 0 ? [p.yellow(`remaining ${s.remaining}`)] : []),
    `${s.duration_ms ?? 0} ms`,
  ];
  const lines = [`${head}${parts.join(" · ")}`];
  for (const failure of s.failures ?? []) {
    const mall = malls.get(failure.id) ?? failure.id.slice(0, 8);
    lines.push(`          ${p.red("✗")} ${(mall ?? "(none)").padEnd(16)} ${failure.reason}`);
  }
  if (failed > (s.failures?.length ?? 0)) {
    lines.push(
      `          … ${failed - (s.failures?.length ?? 0)} more failures (see the run's summary)`,
    );
  }
  return lines;
}

/** A summary read back from jsonb (which sorts keys) in the order the function answers with. */
export function orderedSummary(summary: Record<string, unknown>): Record<string, unknown> {
  const ordered: Record<string, unknown> = {};
  for (const key of [...RUN_SUMMARY_KEYS, ...Object.keys(summary)]) {
    if (!(key in summary) || key in ordered) continue;
    const value = summary[key];
    if (key === "skipped_reasons" && value !== null && typeof value === "object") {
      const reasons = value as Record<string, unknown>;
      ordered[key] = Object.fromEntries(
        [...SKIP_REASONS, ...Object.keys(reasons)].filter((k, i, all) =>
          k in reasons && all.indexOf(k) === i
        ).map((k) => [k, reasons[k]]),
      );
    } else {
      ordered[key] = value;
    }
  }
  return ordered;
}
