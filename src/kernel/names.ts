/** The shapes of names that grants and requests share, and the lengths requests may have. */

/** What a model or field name must look like, in grants and requests alike. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** What an environment variable name must look like. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Length limits of request fields, shared by the schemas and the fast path. */
export const REQUEST_LIMITS = Object.freeze({ name: 256, url: 8192, fields: 1024, argv: 4096 });

/** Names already found to be identifiers: schemas name a few, and every request and grant repeats them. */
const identifiers = new Set<string>();

/** `IDENTIFIER.test(x)` for a string, remembering the names that passed (at most 4096 at a time). */
export function isIdentifierText(x: string): boolean {
  if (identifiers.has(x)) return true;
  if (!IDENTIFIER.test(x)) return false;
  if (identifiers.size >= 4096) identifiers.clear();
  identifiers.add(x);
  return true;
}
