import { InvalidInput } from "../kernel/index.js";
import type { ExternalLedger, LedgerCharge } from "../kernel/internal.js";

/** What to revoke: one block of a token (and every token that contains it), or a link by its capability id. */
export type RevocationTarget = { readonly revocationId: string } | { readonly capabilityId: string };

/**
 * Where verified tokens keep the state that cannot be checked offline:
 * revocations, and the uses and budgets of each block (keyed by its
 * revocation id). The kernel consults it synchronously at every check, so
 * implementations answer from memory and keep that memory current.
 */
export interface TokenStore extends ExternalLedger {
  /**
   * Gets ready to charge these limited keys: a store shared between processes
   * (Postgres) acquires leases on their allowance here, since `charge` is
   * synchronous and may only spend what this process already holds. Resolves
   * once done, also when no room was left (charges then fail, closed); never
   * rejects for lack of room. Stores that charge exactly in `charge` (SQLite)
   * leave it out. `verifyShared` awaits it.
   */
  prepare?(entries: readonly LedgerCharge[]): Promise<void>;
  /** Records the revocation durably; every verifier sharing the store sees it (the local one at once). */
  revoke(target: RevocationTarget, reason?: string): Promise<void>;
  /** Releases connections and files. */
  close(): Promise<void>;
}

const HEX = /^[0-9a-f]{2,256}$/;
const ID = /^[A-Za-z0-9-]{1,64}$/;

/** Validates a revocation target; returns its kind and id, or a message saying what is wrong. */
export function targetKey(target: RevocationTarget): { readonly kind: "block" | "link"; readonly id: string } | string {
  if (typeof target !== "object" || (target as unknown) === null) return "revocation target must be { revocationId } or { capabilityId }";
  if ("revocationId" in target) {
    return typeof target.revocationId === "string" && HEX.test(target.revocationId)
      ? { kind: "block", id: target.revocationId }
      : "revocationId must be the hex revocation id of a token block";
  }
  if ("capabilityId" in target) {
    return typeof target.capabilityId === "string" && ID.test(target.capabilityId)
      ? { kind: "link", id: target.capabilityId }
      : "capabilityId must be a capability id (letters, digits and dashes)";
  }
  return "revocation target must be { revocationId } or { capabilityId }";
}

/** The longest revocation reason a store keeps, in characters. */
export const MAX_REASON_LENGTH = 1000;

/** A revocation reason as stored; throws InvalidInput for one that is not a string or too long. */
export function revocationReason(reason: unknown): string {
  if (typeof reason !== "string") throw new InvalidInput("a revocation reason must be a string");
  if (reason.length > MAX_REASON_LENGTH) {
    throw new InvalidInput(`a revocation reason must be at most ${MAX_REASON_LENGTH} characters; this one has ${reason.length}`);
  }
  return reason;
}
