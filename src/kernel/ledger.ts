/**
 * Kernel-internal hook for links whose state lives outside this process (the
 * blocks of a verified token): their revocation and their use counts are kept
 * in a shared store rather than in the in-memory cell and counters, so every
 * process verifying the same token sees and spends the same state.
 */
import type { Capability } from "./capability.js";
import type { MintRecord } from "./node.js";
import type { WindowRefusal } from "./rate-window.js";

/**
 * One external link's limits, as the kernel asks the ledger to charge them:
 * its uses and budget in total, or (with `perMs`) one of its windowed rates,
 * whose limits hold within any window of that many milliseconds.
 */
export interface LedgerCharge {
  readonly key: string;
  readonly maxCalls: number | null;
  readonly maxCost: number | null;
  readonly perMs?: number;
}

export interface ExternalLedger {
  /**
   * Called once per decision, before `revokedReason`, so a store shared
   * between processes can look whether another one committed a change:
   * revocation must hold from the first decision after it commits.
   */
  refresh?(): void;
  /**
   * Why the store cannot tell what is revoked now (it cannot be read), or
   * null while it can. Asked after `refresh` and before `revokedReason`: a
   * decision is then refused as StoreUnavailable, not as Revoked.
   */
  unavailable?(): string | null;
  /** Why the link (by ledger key or by capability id) is revoked, or null. Consulted at every check, so it must be fast. */
  revokedReason(key: string, linkId: string): string | null;
  /** Calls made and cost spent so far through the link keyed `key` and its descendants. */
  usage(key: string): { readonly calls: number; readonly cost: number };
  /**
   * For a windowed rate (`perMs` set): null when one more request of `cost`
   * fits its window now, else why not and when it would (`now` is the
   * capability's clock, which a store shared between processes may answer
   * by its own).
   */
  rateRefusal(entry: LedgerCharge, now: number, cost: number): WindowRefusal | null;
  /**
   * Atomically charges one call and `cost` to every entry (totals and windows
   * alike, windows at `now`) if every limit still has room, and returns true;
   * otherwise charges nothing and returns false.
   */
  charge(entries: readonly LedgerCharge[], cost: number, now: number): boolean;
}

/** Where one link keeps its external state. */
export interface ExternalLink {
  readonly ledger: ExternalLedger;
  readonly key: string;
}

/** The facts of a principal a mint is asked to issue for. */
export interface MintSubject {
  readonly id: string;
  readonly tenants: readonly string[];
  readonly roles: readonly string[];
}

/**
 * Kernel-internal hook for revocations that name who rather than which link:
 * a principal, tenant, role, signing key, session label or link id, kept in
 * a store the application owns (the token store). A mint given one consults
 * it before issuing and binds every root it issues to it; the kernel then
 * consults it at every decision of anything derived from such a root, so a
 * revocation recorded there holds in this process at once and, once the
 * store has seen it, in every process sharing the store.
 */
export interface RevocationList {
  /** As ExternalLedger.refresh: called once per decision, before the questions below. */
  refresh?(): void;
  /** As ExternalLedger.unavailable: why the list cannot be read now, asked before the questions below; null while it can. */
  unavailable?(): string | null;
  /** Why a chain minted as `mint` (signed under root key `keyId`, if any) is revoked as a whole, or null. */
  mintRevokedReason(mint: Omit<MintRecord, "mintId">, keyId: number | null): string | null;
  /** Why one link is revoked, by its id or by the session its labels name, or null. */
  linkRevokedReason(linkId: string, labels: Readonly<Record<string, string>>): string | null;
  /** Why a mint may not issue for `principal` now (revoked and not reinstated, or its key revoked), or null. */
  mintRefusal(principal: MintSubject, keyId: number | null): string | null;
  /** Calls `listener` whenever the list learns of a revocation; returns the unsubscriber. Lets work in flight stop at once. */
  subscribe(listener: () => void): () => void;
  /** Told of every root a mint bound to the list issues, so a revocation can say how many live capabilities it reached. */
  minted?(root: Capability): void;
}

/** The revocation list a root is bound to, and the root key id its chain is signed under (null in process). */
export interface RootGuard {
  readonly list: RevocationList;
  readonly keyId: number | null;
}
