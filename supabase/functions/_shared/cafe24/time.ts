/**
 * Cafe24 time. The token endpoint returns `expires_at`, `refresh_token_expires_at` and
 * `issued_at` as `YYYY-MM-DDTHH:mm:ss.SSS` with no offset; they are Korea time (UTC+9, no DST
 * since 1988). `new Date()` would read them as the host's local time and be 9 hours off on a UTC
 * host, so they are parsed here, and only here, by hand.
 */

const KOREA_UTC_OFFSET_MS = 9 * 60 * 60 * 1000;

const TIMESTAMP =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Parses a Cafe24 timestamp into an instant. Offset-less values are Korea time; a value that
 * carries an offset (should Cafe24 ever send one) is honoured. Throws SyntaxError otherwise.
 */
export function parseCafe24Timestamp(value: string): Date {
  const match = TIMESTAMP.exec(value);
  if (match === null) {
    throw new SyntaxError(`Cannot parse Cafe24 timestamp: value is "${value.slice(0, 40)}"`);
  }
  const [, y, mo, d, h, mi, s, fraction, offset] = match;
  const parts = [y, mo, d, h, mi, s].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const [year, month, day, hour, minute, second] = parts;
  const millis = fraction === undefined ? 0 : Number(fraction.slice(0, 3).padEnd(3, "0"));
  const wallClockAsUtc = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const check = new Date(wallClockAsUtc);
  if (
    check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59 ||
    (offset !== undefined && offset !== "Z" &&
      (Number(offset.slice(1, 3)) > 23 || Number(offset.slice(-2)) > 59))
  ) {
    throw new SyntaxError(`Cannot parse Cafe24 timestamp: value is "${value.slice(0, 40)}"`);
  }
  return new Date(wallClockAsUtc - offsetMs(offset));
}

function offsetMs(offset: string | undefined): number {
  if (offset === undefined) return KOREA_UTC_OFFSET_MS;
  if (offset === "Z") return 0;
  const sign = offset.startsWith("-") ? -1 : 1;
  const digits = offset.slice(1).replace(":", "");
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4))) * 60 * 1000;
}
