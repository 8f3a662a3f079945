/**
 * Kernel-internal hook for links whose state lives outside this process (the
 * blocks of a verified token): their revocation and their use counts are kept
 * in a shared store rather than in the in-memory cell and counters, so every
 * process verifying the same token sees and spends the same state.
 */

/** One external link's limits, as the kernel asks the ledger to charge them. */
export interface LedgerCharge {
  readonly key: string;
  readonly maxCalls: number | null;
  readonly maxCost: number | null;
}

export interface ExternalLedger {
  /**
   * Called once per decision, before `revokedReason`, so a store shared
   * between processes can look whether another one committed a change:
   * revocation must hold from the first decision after it commits.
   */
  refresh?(): void;
  /** Why the link (by ledger key or by capability id) is revoked, or null. Consulted at every check, so it must be fast. */
  revokedReason(key: string, linkId: string): string | null;
  /** Calls made and cost spent so far through the link keyed `key` and its descendants. */
  usage(key: string): { readonly calls: number; readonly cost: number };
  /**
   * Atomically charges one call and `cost` to every entry if every limit still
   * has room, and returns true; otherwise charges nothing and returns false.
   */
  charge(entries: readonly LedgerCharge[], cost: number): boolean;
}

/** Where one link keeps its external state. */
export interface ExternalLink {
  readonly ledger: ExternalLedger;
  readonly key: string;
}
