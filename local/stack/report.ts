/**
 * Terminal rendering for the local scripts: one line per refresh run, the connection status table
 * (from cafe24_private.connection_status), what pg_net and pg_cron reported, and for every
 * failure what to do about it. Every line fits an 80-column terminal. Plain text; colour only on
 * a terminal and without NO_COLOR.
 */
import type postgres from "postgres";
import { RUN_SUMMARY_KEYS, SKIP_REASONS } from "../../supabase/functions/_shared/refresh/run.ts";
import {
  CONFIG_WARNINGS,
  type RefreshFailureCode,
} from "../../supabase/functions/_shared/platform/errors.ts";

/** The width every line is kept within. */
export const SCREEN_WIDTH = 80;
/** Continuation lines start under the text after the clock and the trigger. */
const INDENT = " ".repeat(10);

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

/** The length a terminal shows: without colour codes. */
export function visibleLength(s: string): number {
  // deno-lint-ignore no-control-regex
  return [...s.replace(/\x1b\[[0-9;]*m/g, "")].length;
}

/** Cuts plain text to `width` columns, ending with "…" when it had to cut. */
export function fit(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : chars.slice(0, Math.max(0, width - 1)).join("") + "…";
}

/**
 * Joins `parts` with `separator`, starting new lines (with `indent`) where the next part would
 * pass `width`. A part longer than a whole line is cut.
 */
export function wrapParts(
  first: string,
  parts: string[],
  options: { separator?: string; indent?: string; width?: number } = {},
): string[] {
  const separator = options.separator ?? " · ";
  const indent = options.indent ?? INDENT;
  const width = options.width ?? SCREEN_WIDTH;
  const lines: string[] = [];
  let line = first;
  let fresh = true;
  for (const part of parts) {
    const glue = fresh ? "" : separator;
    if (!fresh && visibleLength(line + glue + part) > width) {
      lines.push(line);
      line = indent;
      fresh = true;
    }
    const room = width - visibleLength(line) - (fresh ? 0 : separator.length);
    const piece = visibleLength(part) > room ? fit(part, room) : part;
    line += (fresh ? "" : separator) + piece;
    fresh = false;
  }
  lines.push(line);
  return lines;
}

/** Words of `text` over as many lines as needed, each starting with `indent`. */
export function wrapText(text: string, indent: string, width = SCREEN_WIDTH): string[] {
  return wrapParts(indent, text.split(/\s+/).filter((w) => w !== ""), {
    separator: " ",
    indent,
    width,
  });
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

/**
 * What to do about each way a connection's refresh can fail. Operators read it on the local
 * screen and in the CLI's recap; the README's runbook says the same at length.
 */
export const FAILURE_ADVICE = {
  INVALID_MALL_ID: "fix providers.cafe24.mall_id of this auth_settings row",
  CAFE24_INVALID_GRANT: "the mall's owner must connect it again (cafe24-authorize)",
  CAFE24_ANSWER_LOST: "the mall's owner must connect it again (cafe24-authorize)",
  CAFE24_CLIENT_AUTH_FAILED:
    "check CAFE24_CLIENT_ID and CAFE24_CLIENT_SECRET_KEY; no mall is marked disconnected",
  CAFE24_REJECTED: "retried with backoff; if it persists, read the functions' log",
  CAFE24_RATE_LIMITED: "retried after Cafe24's Retry-After; nothing to do",
  CAFE24_SERVER_ERROR: "retried with backoff; nothing to do unless it persists",
  CAFE24_UNEXPECTED_STATUS: "retried with backoff; if it persists, read the functions' log",
  CAFE24_MALFORMED_RESPONSE: "retried with backoff; no token was changed",
  CAFE24_TIMEOUT: "retried with backoff; check the network to Cafe24 if it persists",
  CAFE24_NETWORK_ERROR: "retried with backoff; check the network to Cafe24 (DNS, proxy)",
  STORE_FAILED: "the database was unreachable; the next run recovers the connection",
  LEASE_LOST: "the refresh took longer than its lease; retried on the next run",
} as const satisfies Record<RefreshFailureCode, string>;

/** The advice for a failure reason that starts with its code (`CODE: message (detail)`). */
export function failureAdvice(reason: string): string | null {
  const code = /^([A-Z0-9_]+)/.exec(reason)?.[1] ?? "";
  return code in FAILURE_ADVICE ? FAILURE_ADVICE[code as RefreshFailureCode] : null;
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

/** What the connection shows in the status column: connection_status's, or "refreshing". */
function statusOf(r: ConnectionRow): string {
  if (r.row_state === "ok" && r.status === "active" && r.refreshing_now) return "refreshing";
  return r.status;
}

/** Why a connection was disconnected, from its reason code (disconnect_connection). */
export function disconnectedBy(code: string | null): string {
  switch (code) {
    case "DISCONNECTED_BY_USER":
      return "by user";
    case "DISCONNECTED_BY_APP":
      return "by the app";
    case "APP_UNINSTALLED":
      return "app removed from the mall";
    case "CONNECTION_TAKEN_OVER":
      return "taken over by another user";
    default:
      return code === null ? "" : code;
  }
}

/**
 * What is wrong with a connection now, or "" when nothing is: the last error of a connection
 * that must reconnect or is failing. An error from before a reconnect or a later success is
 * history (it stays in connection_status.last_error_code), not a problem.
 */
export function currentProblem(r: ConnectionRow, nowMs: number): string {
  if (r.status === "disconnected") return disconnectedBy(r.last_error_code);
  if (r.row_state === "malformed") return "not a string: skipped";
  if (r.row_state === "missing_keys") return "no mall_id or refresh_token";
  if (r.row_state !== "ok") return "";
  if (r.status === "reconnect_required") return r.last_error_code ?? "reconnect";
  if (r.consecutive_failures > 0) {
    const retry = r.next_attempt_at === null
      ? ""
      : `, retry ${relativeTime(r.next_attempt_at, nowMs)}`;
    return `${r.last_error_code ?? "failed"} ×${r.consecutive_failures}${retry}`;
  }
  const refreshLeft = r.refresh_expires_at === null
    ? Infinity
    : r.refresh_expires_at.getTime() - nowMs;
  if (refreshLeft < 3 * 24 * 60 * 60_000) {
    return `refresh token ${relativeTime(r.refresh_expires_at, nowMs).replace(/^in /, "ends in ")}`;
  }
  return "";
}

/** What the table says, without its relative times: it is printed again only when this changes. */
export function tableKey(rows: ConnectionRow[]): string {
  return rows.map((r) =>
    [
      r.auth_settings_id,
      r.mall_id,
      r.status,
      r.last_error_code,
      r.consecutive_failures > 0,
    ].join("|")
  ).join("\n");
}

/** A cron tick that found nothing due (it starts no run): one short line. */
export function idleTickLine(at: Date, p: Paint): string {
  return `${p.dim(clockTime(at))}  cron   tick          ${p.dim("nothing due")}`;
}

/**
 * The compact table: one line per connection, at most `limit` rows, then a count. The last
 * column gets what is left of the width and is cut to fit.
 */
export function connectionTable(
  rows: ConnectionRow[],
  nowMs: number,
  p: Paint,
  limit = 25,
  width = SCREEN_WIDTH,
): string {
  if (rows.length === 0) return "  (no connections yet)";
  const shown = rows.slice(0, limit);
  const cells = [
    ["mall", "status", "access", "refreshed", "problem"],
    ...shown.map((r) => [
      r.mall_id ?? "(none)",
      statusOf(r),
      relativeTime(r.access_expires_at, nowMs),
      relativeTime(r.last_refreshed_at, nowMs),
      currentProblem(r, nowMs),
    ]),
  ];
  const widths = cells[0]!.map((_, col) => Math.max(...cells.map((row) => row[col]!.length)));
  const fixed = 2 + widths.slice(0, -1).reduce((sum, w) => sum + w + 2, 0);
  widths[widths.length - 1] = Math.max(8, Math.min(widths.at(-1)!, width - fixed));
  const lines = cells.map((row, r) =>
    "  " + row.map((cell, c) => {
      const text = fit(cell, widths[c]!).padEnd(widths[c]!);
      if (r === 0) return p.dim(text);
      if (c === 1) {
        if (cell === "active" || cell === "refreshing") return p.green(text);
        if (cell === "disconnected" || cell === "not_connected") return p.dim(text);
        return cell === "reconnect_required" ? p.red(text) : p.yellow(text);
      }
      if (c === 4 && cell !== "") {
        return shown[r - 1]!.status === "disconnected" ? p.dim(text) : p.red(text);
      }
      return text;
    }).join("  ").trimEnd()
  );
  if (rows.length > shown.length) lines.push(p.dim(`  … and ${rows.length - shown.length} more`));
  return lines.join("\n");
}

/**
 * What `npm start` says once stopped: what it stopped (the pg_net stand-in only where it ran,
 * i.e. without the real pg_net, see PG_BINDIR) and where the database stays, with its size and
 * how to remove it.
 */
export function stopLines(options: {
  sandbox: boolean;
  netWorker: "stand-in" | "pg_net";
  pgDir: string;
  kb: number | null;
}): string[] {
  const stopped = [
    "functions",
    ...(options.sandbox ? ["Cafe24 sandbox"] : []),
    options.netWorker === "stand-in" ? "pg_net stand-in" : "PostgreSQL with the real pg_net",
    ...(options.netWorker === "stand-in" ? ["PostgreSQL"] : []),
  ];
  const size = options.kb === null
    ? ""
    : ` (${options.kb >= 1024 ? `${Math.round(options.kb / 1024)} MB` : `${options.kb} kB`})`;
  return [
    ...wrapParts("stopped: ", stopped, { separator: ", ", indent: "  " }),
    `kept: the database${size}, until npm start -- --reset removes it:`,
    `  ${options.pgDir}`,
  ];
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
  warnings?: string[];
}

function runHead(run: RunRow, at: Date, p: Paint): string {
  return `${p.dim(clockTime(at))}  ${run.trigger.padEnd(6)} run ${run.id.slice(0, 8)}  `;
}

export function runStartedLine(run: RunRow, p: Paint): string {
  return `${runHead(run, run.started_at, p)}${p.dim("started")}`;
}

/**
 * The finished run (wrapped to the screen), then per failure its mall and code and, beneath,
 * what to do (`malls` maps connection ids to mall ids).
 */
export function runFinishedLines(
  run: RunRow,
  malls: Map<string, string | null>,
  p: Paint,
  where: { log: string } = { log: "the functions' log" },
): string[] {
  const s = run.summary ?? {};
  const head = runHead(run, run.finished_at ?? run.started_at, p);
  if (run.status !== "finished") {
    const parts = [p.red(run.status)];
    if (s.refreshed !== undefined) {
      parts.push(`refreshed ${s.refreshed}`, `failed ${s.failed ?? 0}`);
    }
    return [
      ...wrapParts(head, parts),
      ...wrapText(
        `→ the run stopped early (database unreachable, or the function was stopped); ` +
          `the next run carries on. See ${where.log}.`,
        INDENT,
      ),
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
  const lines = wrapParts(head, parts);
  for (const failure of s.failures ?? []) {
    const mall = malls.get(failure.id) ?? failure.id.slice(0, 8);
    const code = /^[A-Z0-9_]+/.exec(failure.reason)?.[0] ?? failure.reason;
    lines.push(`${INDENT}${p.red("✗")} ${(mall ?? "(none)").padEnd(16)} ${code}`);
    const advice = failureAdvice(failure.reason);
    if (advice !== null) lines.push(...wrapText(`→ ${advice}`, `${INDENT}  `));
  }
  if (failed > (s.failures?.length ?? 0)) {
    lines.push(
      `${INDENT}… ${failed - (s.failures?.length ?? 0)} more failures (see the run's summary)`,
    );
  }
  for (const warning of s.warnings ?? []) {
    lines.push(...wrapText(`${p.yellow("!")} ${warning}: ${warningAdvice(warning)}`, INDENT));
  }
  return lines;
}

/** What a run's configuration warning asks the operator to do (errors.ts says it once). */
function warningAdvice(code: string): string {
  return (CONFIG_WARNINGS as Record<string, { message: string } | undefined>)[code]?.message ??
    "see the functions' log";
}

/** One pg_net response that was not a success, as net._http_response records it. */
export interface NetFailure {
  id: string;
  status_code: number | null;
  content: string | null;
  timed_out: boolean | null;
  error_msg: string | null;
}

/**
 * A pg_net failure of the schedule's call to cafe24-refresh: what it was and what to do.
 * The first line says what happened; the rest is the advice.
 */
export function explainNetFailure(
  failure: NetFailure,
  where: { envFile: string; log: string },
): { what: string; advice: string } {
  let body: { error?: unknown; missing?: unknown; invalid?: unknown } = {};
  try {
    const parsed = JSON.parse(failure.content ?? "");
    if (parsed !== null && typeof parsed === "object") body = parsed;
  } catch { /* not JSON */ }
  const code = typeof body.error === "string" ? body.error : "";
  const names = [body.missing, body.invalid].find(Array.isArray) as unknown[] | undefined;
  const request = `pg_net request ${failure.id}`;
  if (failure.timed_out) {
    return {
      what: `${request} timed out`,
      advice: `cafe24-refresh did not answer within pg_net's timeout; is the functions ` +
        `process alive? See ${where.log}.`,
    };
  }
  if (failure.status_code === null) {
    return {
      what: `${request} failed: ${failure.error_msg ?? "no answer"}`,
      advice: "nothing answered at the Vault secret cafe24_project_url; it must be the " +
        "project URL whose /functions/v1/cafe24-refresh is served.",
    };
  }
  const what = `${request} HTTP ${failure.status_code}${code === "" ? "" : ` ${code}`}`;
  switch (code) {
    case "UNAUTHORIZED":
      return {
        what,
        advice: "the Vault secret cafe24_cron_secret does not match the functions' " +
          "CRON_SECRET. Set them to the same value (restarting npm start sets both).",
      };
    case "CRON_SECRET_NOT_CONFIGURED":
      return { what, advice: `the functions have no CRON_SECRET: set it in ${where.envFile}.` };
    case "CONFIG_MISSING":
    case "CONFIG_INVALID":
      return {
        what,
        advice: `${code === "CONFIG_MISSING" ? "set" : "fix"} ${
          names?.join(", ") ?? "the named variables"
        } in ${where.envFile} (see .env.example).`,
      };
    case "NOT_FOUND":
      return { what, advice: "no such function at cafe24_project_url: check the Vault secret." };
  }
  if (failure.status_code === 404) {
    return { what, advice: "cafe24-refresh is not served at cafe24_project_url." };
  }
  return { what, advice: `cafe24-refresh failed; its log says why: ${where.log}.` };
}

/** pg_cron ran the job's SQL and it failed. */
export function explainCronFailure(message: string | null): { what: string; advice: string } {
  return {
    what: `pg_cron job cafe24-refresh failed: ${message ?? "(no message)"}`,
    advice: "run `select cafe24_private.invoke_cafe24_refresh()` in psql to see the error " +
      "(missing migration or extension: apply the migrations again).",
  };
}

/** `what` in red after the clock, then the advice, both wrapped to the screen. */
export function eventLines(at: Date, what: string, advice: string, p: Paint): string[] {
  const words = what.split(/\s+/).filter((w) => w !== "").map((w) => p.red(w));
  return [
    ...wrapParts(`${p.dim(clockTime(at))}  `, words, { separator: " ", indent: INDENT }),
    ...wrapText(`→ ${advice}`, INDENT),
  ];
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
