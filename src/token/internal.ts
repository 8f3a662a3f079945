/** What agentcap's own higher layers use of the token layer beyond its entry: reading a token's blocks with their revocation state. */
export { inspectVerified } from "./token.js";
