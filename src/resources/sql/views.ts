import { createHmac } from "node:crypto";
import type { FieldView, Scalar } from "../../kernel/index.js";

/*
 * What a returned value becomes when the capability shows its field other
 * than whole. The database still reads the column; the value is transformed
 * before the row leaves the resource, so no caller ever holds the original.
 */

/** What a redacted field reads as, whatever its value (null included, so not even emptiness shows). */
export const REDACTED = "[redacted]";

const PLACEHOLDER = /\{(first|last)([1-9])\}/g;

/**
 * A mask: the pattern with `{firstN}` and `{lastN}` replaced by the value's
 * first or last N characters. A value too short to keep most of itself
 * hidden (fewer than twice the characters the pattern would reveal) has
 * every placeholder replaced by asterisks instead, so a short value is never
 * shown whole. Null stays null.
 */
function masker(pattern: string): (value: Scalar) => Scalar {
  let revealed = 0;
  for (const m of pattern.matchAll(PLACEHOLDER)) revealed += Number(m[2]);
  return (value) => {
    if (value === null) return null;
    const text = Array.from(String(value));
    const hidden = text.length < 2 * revealed;
    return pattern.replace(PLACEHOLDER, (_, side: string, n: string) => {
      const count = Number(n);
      if (hidden) return "*".repeat(count);
      return (side === "first" ? text.slice(0, count) : text.slice(text.length - count)).join("");
    });
  };
}

/**
 * A keyed hash: HMAC-SHA-256 of the value's JSON text under the database's
 * hash key, its first 128 bits in hex. Equal values give equal hashes (in
 * any field, so they can be matched across models); 1 and "1" do not. Null
 * stays null.
 */
function hasher(key: Buffer): (value: Scalar) => Scalar {
  return (value) => (value === null ? null : createHmac("sha256", key).update(JSON.stringify(value)).digest("hex").slice(0, 32));
}

/** The transformation of a field shown as `view`. */
export function viewTransform(view: FieldView, hashKey: Buffer): (value: Scalar) => Scalar {
  if (view === "redact") return () => REDACTED;
  if (view === "hash") return hasher(hashKey);
  return masker(view.mask);
}
