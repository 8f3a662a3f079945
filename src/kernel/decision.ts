import { ApprovalRequired, BudgetExhausted, CapabilityDenied, Expired, Revoked, StoreUnavailable, type DenialCode, type DenialDetails } from "./errors.js";

/** What a grant attached in shadow would have decided instead: the shadow link, and the rule that would have denied. */
export interface ShadowDenial {
  readonly link: number;
  readonly linkId: string;
  readonly rule: string;
  readonly because: string;
}

/** The request was allowed by every link of the chain. */
export interface Allowed {
  readonly allowed: true;
  readonly capabilityId: string;
  /** Present when a grant attached in shadow (`shadow`) would have denied the request: the disagreement, for the audit log. */
  readonly shadow?: ShadowDenial;
}

/**
 * The request was denied; `link` says which link of the chain denied it,
 * `reason` why in full (for logs and operators), `because` the same without
 * naming the link or its principal (for the capability's user).
 */
export interface Denied extends DenialDetails {
  readonly allowed: false;
  readonly code: DenialCode;
  readonly reason: string;
}

/** The outcome of checking one request against one capability. */
export type Decision = Allowed | Denied;

const ERRORS = {
  ERR_CAPABILITY_DENIED: CapabilityDenied,
  ERR_EXPIRED: Expired,
  ERR_REVOKED: Revoked,
  ERR_BUDGET_EXHAUSTED: BudgetExhausted,
  ERR_APPROVAL_REQUIRED: ApprovalRequired,
  ERR_STORE_UNAVAILABLE: StoreUnavailable,
} as const;

/** The typed error that stands for a denial. */
export function denialError(d: Denied): CapabilityDenied | Expired | Revoked | BudgetExhausted | ApprovalRequired | StoreUnavailable {
  const { capabilityId, link, linkId, rule, because } = d;
  const retry = d.retryAt === undefined ? {} : { retryAt: d.retryAt };
  return new ERRORS[d.code](d.reason, { capabilityId, link, linkId, rule, because, ...retry });
}
