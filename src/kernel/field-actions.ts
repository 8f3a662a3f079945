/*
 * How a db rule lets one field be seen. The actions form a lattice, from
 * most to least revealing:
 *
 *          allow
 *         /     \
 *   mask(p)     hash
 *         \     /
 *         redact
 *           |
 *          deny
 *
 * A request names how it will show each field it returns (its view), and a
 * link allows the view only when its action is at or above it. Since every
 * link of a chain must allow a request, a narrower link can only move a field
 * down this lattice, never back up. Two different mask patterns reveal
 * different characters, so neither is above the other: where links disagree,
 * the field can only be shown redacted.
 */

/** How a rule lets a field be seen: whole, partly masked, as a keyed hash, as a placeholder, or not at all. */
export type FieldAction = "allow" | "hash" | "redact" | "deny" | { readonly mask: string };

/** How a request shows a field it returns other than whole. */
export type FieldView = "hash" | "redact" | { readonly mask: string };

/**
 * A mask pattern: literal characters, with `{firstN}` and `{lastN}` (N from 1
 * to 9) standing for the value's first or last N characters, as in
 * `***-**-{last4}`. At most 64 characters; no other braces.
 */
export const MASK_PATTERN = /^(?:[^{}\0]|\{(?:first|last)[1-9]\}){1,64}$/;

/** An action or view as one string: "allow", "hash", "redact", "deny", or "mask:" and its pattern. */
export function actionKey(action: FieldAction): string {
  return typeof action === "string" ? action : `mask:${action.mask}`;
}

/** Whether a link whose action on a field is `action` (as actionKey writes it) allows showing it as `view` (the same). */
export function actionPermits(action: string, view: string): boolean {
  if (action === "deny") return false;
  if (action === "allow" || action === view) return true;
  return view === "redact";
}

/** The most a request may show of a field that links show as `a` and `b` (actionKey form): the lattice's meet. */
export function meetActions(a: string, b: string): string {
  if (a === b || b === "allow") return a;
  if (a === "allow") return b;
  if (a === "deny" || b === "deny") return "deny";
  return "redact";
}

/** The view an actionKey string stands for; "allow" and "deny" are not views. */
export function viewOfKey(key: string): FieldView {
  if (key === "hash" || key === "redact") return key;
  return { mask: key.slice("mask:".length) };
}
