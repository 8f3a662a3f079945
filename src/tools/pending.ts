/**
 * Whether `value` is something to wait for (a promise or another thenable).
 * The dispatcher awaits only such answers, from a tool's needs or handler or
 * the audit sink: an answer given synchronously is used at once, so a call
 * whose parts all answer synchronously costs no turn of the event loop.
 */
export function isPending(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === "object" || typeof value === "function") && value !== null && typeof (value as { then?: unknown }).then === "function";
}
