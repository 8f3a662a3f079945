/**
 * The arithmetic of leases on limited blocks' allowances, with no I/O: what
 * this process holds, what it may charge, when it must ask for more, and how
 * much to ask for. The Postgres store keeps one and runs its plans in
 * transactions; tests drive it directly.
 *
 * A process charges only units it holds in a lease and has "armed" (recorded
 * in Postgres as spent should it die), so no two processes ever spend the
 * same unit and a crash never gives back a unit that may have been used.
 */
import type { LedgerCharge } from "../kernel/internal.js";

/**
 * The fewest calls a lease takes when that many are left. One tool call
 * spends at least two uses of every link (the call and its resource access),
 * so a one-call lease would refuse the very first tool call of a session.
 */
export const MIN_LEASE_CALLS = 4;

/** This process's lease on one key's allowance, as last confirmed by Postgres. */
export interface Lease {
  readonly limits: LedgerCharge;
  /** Units held (spent ones included), reclaimable by others only after expiry. */
  heldCalls: number;
  heldCost: number;
  /** Units recorded in Postgres as spent should this process die: charges may use only these. */
  armedCalls: number;
  armedCost: number;
  /** Units this process charged under the lease. */
  usedCalls: number;
  usedCost: number;
  /** Monotonic time after which the lease may have expired: no charge after it until renewed. */
  deadline: number;
}

/** What Postgres says of one key's allowance, with the row locked. */
export interface AllowanceState {
  readonly maxCalls: number | null;
  readonly maxCost: number | null;
  /** Spent for good, including what expired leases of others had armed. */
  readonly spentCalls: number;
  readonly spentCost: number;
  /** Held by every lease (this process's included). */
  readonly heldCalls: number;
  readonly heldCost: number;
}

/** The lease to write back: what this process holds and has armed after a reservation. */
export interface LeasePlan {
  readonly heldCalls: number;
  readonly heldCost: number;
  readonly armedCalls: number;
  readonly armedCost: number;
}

export interface LeaseBookOptions {
  readonly ttlMs: number;
  /** Share of a limit taken per lease, more than 0 and at most 1. */
  readonly share: number;
  /** Calls armed ahead of use. */
  readonly armAhead: number;
}

export class LeaseBook {
  readonly #leases = new Map<string, Lease>();
  readonly #options: LeaseBookOptions;

  constructor(options: LeaseBookOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#leases.size;
  }

  get(key: string): Lease | undefined {
    return this.#leases.get(key);
  }

  keys(): string[] {
    return [...this.#leases.keys()];
  }

  drop(key: string): void {
    this.#leases.delete(key);
  }

  clear(): void {
    this.#leases.clear();
  }

  /** Whether the lease is running low on time, calls or cost, so more should be asked for in the background. */
  low(l: Lease, now: number): boolean {
    const { ttlMs, share, armAhead } = this.#options;
    return (
      now > l.deadline - ttlMs / 2 ||
      (l.limits.maxCalls !== null &&
        ((l.armedCalls < l.heldCalls && l.armedCalls - l.usedCalls <= armAhead / 2) || l.heldCalls - l.usedCalls <= Math.ceil(l.limits.maxCalls * share) / 2)) ||
      (l.limits.maxCost !== null && l.heldCost - l.usedCost <= (l.limits.maxCost * share) / 2)
    );
  }

  /** Whether `key` needs a reservation before it can be charged. */
  needsLease(key: string, now: number): boolean {
    const l = this.#leases.get(key);
    return l === undefined || this.low(l, now);
  }

  /**
   * Charges one call and `cost` to every entry if each has a live lease with
   * that much armed; otherwise charges nothing. Returns the keys to top up
   * (those without room, or low after the charge) and whether it charged.
   */
  charge(entries: readonly LedgerCharge[], cost: number, now: number): { readonly charged: boolean; readonly topUp: readonly LedgerCharge[] } {
    const short: LedgerCharge[] = [];
    for (const e of entries) {
      const l = this.#leases.get(e.key);
      const ok =
        l !== undefined &&
        now < l.deadline &&
        (e.maxCalls === null || l.usedCalls + 1 <= l.armedCalls) &&
        (e.maxCost === null || l.usedCost + cost <= l.armedCost);
      if (!ok) short.push(e);
    }
    if (short.length > 0) return { charged: false, topUp: short };
    const low: LedgerCharge[] = [];
    for (const e of entries) {
      const l = this.#leases.get(e.key) as Lease;
      l.usedCalls += 1;
      l.usedCost += cost;
      if (this.low(l, now)) low.push(e);
    }
    return { charged: true, topUp: low };
  }

  /**
   * The lease to hold on `limits.key` given the allowance as Postgres has it
   * (row locked) and whether Postgres still has this process's lease row.
   * `needCost` asks for at least that much cost room beyond what is unused.
   * Null when there is nothing to hold and nothing held.
   */
  plan(limits: LedgerCharge, allowance: AllowanceState, stillOurs: boolean, needCost: number): LeasePlan | null {
    const { share, armAhead } = this.#options;
    let mine = this.#leases.get(limits.key);
    if (mine !== undefined && !stillOurs) {
      // Reclaimed by another process after it expired (its armed units were counted as spent): start afresh.
      this.#leases.delete(limits.key);
      mine = undefined;
    }
    let heldCalls = mine?.heldCalls ?? 0;
    let heldCost = mine?.heldCost ?? 0;
    const usedCalls = mine?.usedCalls ?? 0;
    const usedCost = mine?.usedCost ?? 0;
    if (allowance.maxCalls !== null) {
      const room = allowance.maxCalls - allowance.spentCalls - allowance.heldCalls;
      const want = Math.max(MIN_LEASE_CALLS, Math.ceil(allowance.maxCalls * share));
      if (heldCalls - usedCalls < Math.max(1, Math.ceil(want / 2))) heldCalls += Math.max(0, Math.min(room, want));
    }
    if (allowance.maxCost !== null) {
      const room = allowance.maxCost - allowance.spentCost - allowance.heldCost;
      const want = Math.max(allowance.maxCost * share, needCost);
      if (heldCost - usedCost < Math.max(want / 2, needCost)) heldCost += Math.max(0, Math.min(room, want));
    }
    const armedCalls = Math.max(mine?.armedCalls ?? 0, Math.min(heldCalls, usedCalls + armAhead));
    if (heldCalls === 0 && heldCost === 0 && mine === undefined) return null;
    return { heldCalls, heldCost, armedCalls, armedCost: heldCost };
  }

  /** Records a plan Postgres committed; `sentAt` is when the transaction was sent, so the lease expires no earlier than `sentAt + ttl`. */
  commit(limits: LedgerCharge, plan: LeasePlan, sentAt: number): void {
    const deadline = sentAt + this.#options.ttlMs;
    const mine = this.#leases.get(limits.key);
    if (mine === undefined) this.#leases.set(limits.key, { limits, ...plan, usedCalls: 0, usedCost: 0, deadline });
    else Object.assign(mine, plan, { deadline });
  }

  /** After a renewal: leases Postgres renewed live on, the others were reclaimed and are gone. */
  renewed(keys: readonly string[], renewedKeys: ReadonlySet<string>, sentAt: number): void {
    for (const key of keys) {
      const l = this.#leases.get(key);
      if (l === undefined) continue;
      if (renewedKeys.has(key)) l.deadline = sentAt + this.#options.ttlMs;
      else this.#leases.delete(key);
    }
  }
}
