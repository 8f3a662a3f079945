/**
 * What a client is told when the gateway refuses its token. RFC 6750 asks
 * for `error="invalid_token"` and lets `error_description` help a developer;
 * anything more would be a gift to whoever sent the token. The refusal
 * errors say a great deal (which key ids the gateway trusts, which block of
 * the chain was revoked and why, the Biscuit parser's own text), and they
 * reach anyone able to send a request, so a client gets only the error's
 * stable code and one fixed sentence per kind of refusal; the error itself
 * goes to the server's log.
 */
import { Expired, InvalidToken, Revoked, StoreUnavailable, type AgentcapError, type AgentcapErrorCode } from "../kernel/index.js";

/** The refusal as the client sees it. */
export interface TokenRefusal {
  /** The agentcap error code, such as ERR_REVOKED: stable, for programs. */
  readonly code: AgentcapErrorCode;
  /** One fixed sentence for people, the same for every token refused for this kind of reason. */
  readonly description: string;
}

/*
 * InvalidToken carries no structured reason yet, so an unknown key is told
 * apart by the start of its message; should that text change, the refusal
 * falls back to the generic sentence, which reveals no more.
 */
const UNKNOWN_KEY = /^token was signed with root key id \d+, which this verifier does not know/;
/** An identity provider's token for another audience, or from another issuer (see oauth.ts). */
const NOT_FOR_US = /^access token was not issued for this resource/;
/** A JWT of the provider's whose type is not one oauth.tokenTypes accepts, such as an ID token (see oauth.ts). */
const NOT_ACCESS = /^access token is not of an accepted type/;

/** The client's view of `error`, a refusal of a token. */
export function tokenRefusal(error: AgentcapError): TokenRefusal {
  if (error instanceof Revoked) return { code: error.code, description: "the token has been revoked" };
  if (error instanceof Expired) return { code: error.code, description: "the token has expired" };
  // Not a refusal of the token: whether it was revoked could not be looked up, so it is not accepted now, and may be later.
  if (error instanceof StoreUnavailable) return { code: error.code, description: "the token could not be checked for revocation because the token store is unavailable; retry shortly" };
  if (error instanceof InvalidToken) {
    if (UNKNOWN_KEY.test(error.message)) return { code: error.code, description: "the token is signed by a key this server does not trust" };
    if (NOT_FOR_US.test(error.message)) return { code: error.code, description: "the token was not issued for this server" };
    if (NOT_ACCESS.test(error.message)) return { code: error.code, description: "the token is not an access token of a type this server accepts" };
    return { code: error.code, description: "the token is malformed or its signature does not verify" };
  }
  return { code: error.code, description: "the token is not accepted" };
}
