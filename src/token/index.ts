/**
 * `agentcap/token`: capabilities as Biscuit v3 tokens (Ed25519). Attenuable
 * offline by any holder, verified with the issuer's public keys, with
 * revocations, uses and budgets kept in a shared store (SQLite or Postgres,
 * each loaded only when opened).
 */
export { attenuate, createTokenMint, createVerifier, readToken, revokeToken, toToken, verify, verifyShared } from "./token.ts";
export type { AttenuateOptions, TokenMint, TokenMintOptions, VerifiedBlock, Verifier, VerifyOptions } from "./token.ts";
export { generateKeyPair } from "./biscuit.ts";
export type { KeyPairText } from "./biscuit.ts";
export type { BlockData } from "./block.ts";
export type { PublicKeySet } from "./keys.ts";
export type { RevocationTarget, TokenStore } from "./store.ts";
export { openSqliteTokenStore } from "./sqlite-store.ts";
export { openPostgresTokenStore } from "./postgres-store.ts";
export type { PostgresStoreOptions } from "./postgres-store.ts";
