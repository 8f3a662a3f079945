/**
 * What agentcap's own layers use of the kernel beyond its public entry. Not
 * part of the package's exports: applications never see these.
 */
export { classifyAddress, isIpLiteral, unbracket } from "./address.ts";
export type { AddressClass } from "./address.ts";
export { failureOutcome } from "./audit-sink.ts";
export { absolutePathProblem, canonicalHttpUrl, isWithin, originProblem, pathHasPrefix } from "./canonical-forms.ts";
export { deadDenial, innermostGrant, labelsOf, rootOf } from "./capability.ts";
export { monotonicClock } from "./clock.ts";
export { canonicalJson, sha256Hex } from "./content-hash.ts";
export { describeIssues } from "./grant.ts";
export type { ExternalLedger, ExternalLink, LedgerCharge } from "./ledger.ts";
export { snapshotPlainData } from "./plain-data.ts";
export type { PlainData } from "./plain-data.ts";
export { checkRequest, ENV_NAME, IDENTIFIER, REQUEST_LIMITS } from "./request.ts";
export type { CheckedRequest, ParsedRequest } from "./request.ts";
export { compileConditions } from "./rules.ts";
export type { CompiledConditions } from "./rules.ts";
export { appendTokenLink, createTokenRoot } from "./token-links.ts";
export type { TokenLinkContent, TokenLinkIdentity } from "./token-links.ts";
