import { hash } from "node:crypto";

/** The `prevHash` of the first entry of a log. */
export const GENESIS_HASH = "0".repeat(64);

/** Where a log's chain ends: the last entry's sequence number and chain hash. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/**
 * The chain hash an entry carries: SHA-256 over the previous entry's chain
 * hash and the entry's own Merkle leaf hash (both hex). The sequence number
 * is not hashed: order is fixed by the chain of previous hashes, which lets
 * the verifier tell a moved entry (its own hash still holds) from an edited
 * one. The signed checkpoints of the Merkle tree are what make the log
 * tamper-evident; the chain only explains where it was changed.
 */
export function chainHash(prevHash: string, leafHex: string): string {
  return hash("sha256", `agentcap.audit.v2\n${prevHash}${leafHex}`, "hex");
}
