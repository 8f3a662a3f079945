import { AgentcapError, AuditFailure, ForeignFailure, InvalidToken, isDenial, type AgentcapErrorCode } from "./errors.js";

/** What a refused or failed call tells whoever made it: a stable code and one line of text. */
export interface CallerMessage {
  readonly code: AgentcapErrorCode;
  readonly text: string;
}

const MAX_TEXT = 500;

/**
 * The words a model or an MCP client is shown for an error, built from its
 * structured details: a denial says which rule refused, never the link ids,
 * the principal or a revocation reason; an audit failure says the result was
 * withheld, never the store's own error; a bad token says only that (its
 * message may name the issuer's key ids); anything agentcap does not own is
 * ERR_FOREIGN_FAILURE with the first line of its message.
 */
export function callerMessage(error: unknown): CallerMessage {
  if (isDenial(error)) return { code: error.code, text: `the capability ${error.details.because}` };
  if (error instanceof InvalidToken) return { code: error.code, text: "the token is not valid here" };
  if (error instanceof AuditFailure) return { code: error.code, text: "the call could not be recorded in the audit log, so its result is withheld" };
  const known = error instanceof AgentcapError ? error : ForeignFailure.of(error);
  const firstLine = known.message.split("\n", 1)[0] ?? "";
  return { code: known.code, text: firstLine.length > MAX_TEXT ? `${firstLine.slice(0, MAX_TEXT)}…` : firstLine };
}
