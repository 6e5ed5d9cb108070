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
