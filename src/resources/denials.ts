import type { Denied } from "../kernel/index.js";

/*
 * A resource decides on what the caller's words resolve to (symbolic links
 * followed, a program's real path), and the kernel's reason names what it
 * decided on. Told to the caller, that would answer questions the caller may
 * not ask: where a link points, the application's working directory, which
 * files the process holds open. So the caller is told the denial in its own
 * words; the audit keeps the resolved request.
 */

/** `text` naming `given` where it named `resolved`: at its end first, where a denial names what it denied. */
function retold(text: string, resolved: string, given: string): string {
  if (text.endsWith(resolved)) return `${text.slice(0, text.length - resolved.length)}${given}`;
  return resolved.length > 1 ? text.split(resolved).join(given) : text;
}

/**
 * `decision`, its reason and its `because` naming `given` (the caller's own
 * words) instead of `resolved` (what they resolved to).
 */
export function inCallersWords(decision: Denied, resolved: string, given: string): Denied {
  if (resolved === given) return decision;
  return Object.freeze({ ...decision, reason: retold(decision.reason, resolved, given), because: retold(decision.because, resolved, given) });
}
