/**
 * The webhook a gateway's operator configures for approval requests: each
 * new request is POSTed as JSON, exactly the view approvers see (caller,
 * lineage ids, tool, canonical request, arguments and their hash, expiry,
 * requirements), never a capability or a token. It is a notice: approvers
 * act through `agentcap approvals` or the application, and a failed POST
 * does not fail the call.
 */
import type { ApprovalView } from "../kernel/index.js";

/** How long one POST may take before it is given up. */
const WEBHOOK_TIMEOUT_MS = 10_000;

/** The body of one notice. */
export interface ApprovalNotice {
  readonly type: "agentcap.approval.requested";
  readonly request: ApprovalView;
}

/** A notify function for createApprovals that POSTs each new request to `url`; resolves once the receiver answered 2xx, rejects otherwise. */
export function approvalWebhook(url: string): (request: ApprovalView) => Promise<void> {
  return async (request) => {
    const notice: ApprovalNotice = { type: "agentcap.approval.requested", request };
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(notice),
      redirect: "error",
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`approval webhook answered ${response.status}`);
  };
}
