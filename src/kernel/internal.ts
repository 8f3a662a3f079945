/**
 * What agentcap's own layers use of the kernel beyond its public entry. Not
 * part of the package's exports: applications never see these.
 */
export { addressBits, addressRangeBits, classifyAddress, isIpLiteral, unbracket } from "./address.js";
export type { AddressClass } from "./address.js";
export { failureOutcome, isAuditSink } from "./audit-sink.js";
export { heldIntentPending, heldIntents, holdIntent } from "./held-intents.js";
export { absolutePathProblem, canonicalHttpUrl, isWithin, originProblem, pathHasPrefix } from "./canonical-forms.js";
export { approvalRulesFor, caretaker, deadDenial, innermostGrant, labelsOf, liveDenial, narrowedCaretaker, rootOf, stampApproval } from "./capability.js";
export { argumentsHash } from "./arguments-hash.js";
export { STORE_UNAVAILABLE_BECAUSE } from "./evaluation.js";
export type { ApprovalStamp, Approver } from "./node.js";
export { isLinkSummary, parseLabels, RESERVED_LABELS } from "./node.js";
export { monotonicClock } from "./clock.js";
export { readBoundedText } from "./bounded-file.js";
export { canonicalJson, sha256Hex } from "./content-hash.js";
export { describeIssues } from "./grant.js";
export { actionKey, actionPermits, meetActions, viewOfKey } from "./field-actions.js";
export { describeRule, ruleChildren, ruleKey } from "./row-rules.js";
export { isPrincipalRef } from "./principal-refs.js";
export type { ExternalLedger, ExternalLink, LedgerCharge, MintSubject, RevocationList, RootGuard } from "./ledger.js";
export { createKeyedMint, keyMintId } from "./mint.js";
export { windowRefusal } from "./rate-window.js";
export type { WindowEntry, WindowLimits, WindowRefusal } from "./rate-window.js";
export { deepFreeze, snapshotPlainData } from "./plain-data.js";
export type { PlainData } from "./plain-data.js";
export { ENV_NAME, IDENTIFIER, REQUEST_LIMITS } from "./names.js";
export { checkRequest, preparedRequest } from "./request.js";
export type { CheckedRequest, ParsedRequest } from "./request.js";
export { compileConditions, compileDomains, domainDenial, isApproverOf, requestKey } from "./rules.js";
export type { CompiledApprovalRule, CompiledConditions, CompiledDomains } from "./rules.js";
export { ancestorAt, appendTokenLink, createTokenRoot, guardOf, moveToLedger, watchLinkRevocation } from "./token-links.js";
export type { TokenLinkContent, TokenLinkIdentity } from "./token-links.js";
export { importOptional, requireOptional, resolveOptional } from "./optional.js";
export { defined } from "./defined.js";
export { authorizeTrusted, checkTrusted, trustedMintsOption, untrustedMint } from "./mint-trust.js";
export type { TrustedMints } from "./mint-trust.js";
export { timeOrderedId } from "./ids.js";
export { startAccessSpan, startToolSpan } from "./tracing.js";
export type { TraceSpan } from "./tracing.js";
