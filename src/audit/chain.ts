import { createHash } from "node:crypto";

/** The `prevHash` of the first event of a log. */
export const GENESIS_HASH = "0".repeat(64);

/** Where a log's chain ends: the last event's sequence number and hash. Noting it elsewhere lets `verify` detect a truncated end. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/**
 * The hash an event carries: SHA-256 over the previous event's hash, the
 * event's canonical body (its lineage written as link ids) and the canonical
 * encoding of each lineage link, root first. The parts are joined with
 * newlines, which canonical JSON never contains, so no two different events
 * share an input. The sequence number is not hashed: order is fixed by the
 * chain of previous hashes, which lets the verifier tell a moved event (its
 * own hash still holds) from an edited one.
 */
export function chainHash(prevHash: string, body: string, linkTexts: readonly string[]): string {
  const h = createHash("sha256").update("agentcap.audit.v1\n").update(prevHash).update("\n").update(body);
  for (const text of linkTexts) h.update("\n").update(text);
  return h.digest("hex");
}
