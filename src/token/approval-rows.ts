/**
 * Approval requests as the SQLite and Postgres stores keep them: one row per
 * request, its status and times in columns for listing, the rest as JSON.
 * A row read back is checked for shape, so a damaged row is an error, not a
 * request someone could approve.
 */
import { InvalidInput, type ApprovalEntry, type ApprovalView } from "../kernel/index.js";
import { deepFreeze } from "../kernel/internal.js";

/** The statuses a row may hold. */
export const APPROVAL_STATUSES = Object.freeze(["pending", "approved", "denied", "expired", "cancelled", "executed"] as const);

/** What an approval row holds besides its columns. */
export function rowBody(entry: Pick<ApprovalEntry, "subject" | "proposal">, view: ApprovalView): string {
  return JSON.stringify({ view, subject: entry.subject, proposal: entry.proposal });
}

/** The entry a row holds; InvalidInput when its body is not one. */
export function entryOfRow(id: string, body: string, version: number): ApprovalEntry {
  let data: unknown;
  try {
    data = JSON.parse(body);
  } catch {
    throw new InvalidInput(`approval request ${id} in the store is damaged: its body is not JSON`);
  }
  const d = data as Partial<ApprovalEntry> | null;
  const view = d?.view as Partial<ApprovalView> | undefined;
  if (typeof d !== "object" || d === null || typeof view !== "object" || view.id !== id || !APPROVAL_STATUSES.includes(view.status as never) || typeof d.subject !== "object" || typeof d.proposal !== "object") {
    throw new InvalidInput(`approval request ${id} in the store is damaged: it does not hold a request, its caller and its proposal`);
  }
  return deepFreeze({ view: view as ApprovalView, subject: d.subject, proposal: d.proposal, version });
}
