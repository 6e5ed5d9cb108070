/**
 * Cafe24 scope names (`mall.read_product`, `mall.write_order`, …). Cafe24's working clients send
 * them comma-separated, so this project writes and reads them that way.
 */

/** One Cafe24 scope name. */
export const CAFE24_SCOPE_PATTERN = /^mall\.(read|write)_[a-z]+(_[a-z]+)*$/;

/** More than any real app asks for; bounds what a request or a state can carry. */
export const MAX_SCOPES = 50;

/** `mall.read_product, mall.write_product` → the names, trimmed and deduplicated, in order; null if any is not a scope name. */
export function parseScopeList(text: string): string[] | null {
  const names = text.split(",").map((name) => name.trim());
  if (names.length > MAX_SCOPES || names.some((name) => !CAFE24_SCOPE_PATTERN.test(name))) {
    return null;
  }
  return [...new Set(names)];
}

export function isScopeList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length <= MAX_SCOPES &&
    value.every((scope) => typeof scope === "string" && CAFE24_SCOPE_PATTERN.test(scope));
}

/**
 * The scopes Cafe24 granted beyond `requested`, which make a connection refused. Cafe24 may list
 * `mall.read_X` beside a requested `mall.write_X` (unconfirmed); that grants less than the owner
 * approved, so it is accepted. Anything else not requested (e.g. a scope added to the Cafe24 URL
 * by hand) is returned.
 */
export function scopesNotRequested(
  granted: readonly string[],
  requested: readonly string[],
): string[] {
  return granted.filter((scope) =>
    !requested.includes(scope) &&
    !(scope.startsWith("mall.read_") &&
      requested.includes(scope.replace(/^mall\.read_/, "mall.write_")))
  );
}
