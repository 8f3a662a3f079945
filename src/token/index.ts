/**
 * `agentcap/token`: capabilities as Biscuit v3 tokens (Ed25519). Attenuable
 * offline by any holder, verified with the issuer's public keys, with
 * revocations, uses and budgets kept in a shared store (SQLite or Postgres,
 * each loaded only when opened).
 */
export { attenuate, createTokenMint, createVerifier, readToken, revokeToken, toToken, verify, verifyShared } from "./token.js";
export type { AttenuateOptions, TokenMint, TokenMintOptions, VerifiedBlock, Verifier, VerifyOptions } from "./token.js";
export { generateKeyPair } from "./biscuit.js";
export type { KeyPairText } from "./biscuit.js";
export type { BlockData } from "./block.js";
export type { PublicKeySet } from "./keys.js";
export type {
  ReinstateTarget,
  RevocationEntry,
  RevocationReach,
  RevocationReport,
  RevocationTarget,
  RevokeOptions,
  TargetKind,
  TokenStore,
  TokenStoreStats,
} from "./store.js";
export { TARGET_KINDS } from "./store.js";
export { openSqliteTokenStore } from "./sqlite-store.js";
export type { SqliteStoreOptions } from "./sqlite-store.js";
export { openPostgresTokenStore } from "./postgres-store.js";
export type { PostgresStoreOptions } from "./postgres-store.js";
/** Approval requests kept in the token store's database (SQLite file or Postgres schema), shared by every process that opens it. */
export { openSqliteApprovalStore } from "./approval-sqlite.js";
export { openPostgresApprovalStore } from "./approval-postgres.js";
export type { PostgresApprovalStoreOptions } from "./approval-postgres.js";
/**
 * The credential vault: each principal's own secret per origin, sealed with
 * AES-256-GCM under a key kept outside the database (bound to its principal
 * and origin, so it opens nowhere else), attached by a resource when it
 * sends; a revoked principal's credentials are not opened.
 */
export { openSqliteVault } from "./vault-sqlite.js";
export { openPostgresVault } from "./vault-postgres.js";
export type { PostgresVaultOptions } from "./vault-postgres.js";
export type { CredentialEntry, CredentialVault, VaultOptions } from "./vault.js";
/** The vault's key: loaded from a file or an environment variable, shown only by its id. */
export { generateVaultKey, loadVaultKey, parseVaultKey } from "./vault-key.js";
export type { VaultKey, VaultKeySource } from "./vault-key.js";
