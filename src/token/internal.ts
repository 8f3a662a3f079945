/** What agentcap's own higher layers use of the token layer beyond its entry: reading a token's blocks with their revocation state. */
export { inspectVerified } from "./token.js";
/** The public key of a key file's private key, for a process that verifies with the key it could mint with. */
export { publicKeyOf } from "./biscuit.js";
