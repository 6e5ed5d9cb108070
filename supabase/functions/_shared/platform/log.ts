/**
 * Structured log lines, one JSON object per line. Callers pass ids, counts and codes; nothing
 * here accepts a token. As a last guard, any string value that looks like a credential header
 * is masked.
 */
type LogValue = string | number | boolean | null | undefined | LogValue[] | {
  [key: string]: LogValue;
};

const CREDENTIAL_PATTERN = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;

function scrub(value: LogValue): LogValue {
  if (typeof value === "string") return value.replace(CREDENTIAL_PATTERN, "$1 [redacted]");
  if (Array.isArray(value)) return value.map(scrub);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v)]));
  }
  return value;
}

export function logEvent(
  level: "info" | "warn" | "error",
  event: string,
  fields: Record<string, LogValue> = {},
): void {
  const line = JSON.stringify({
    level,
    event,
    at: new Date().toISOString(),
    ...scrub(fields) as object,
  });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
