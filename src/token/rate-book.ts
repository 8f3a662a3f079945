/**
 * The arithmetic of reservations in shared windowed rates, with no I/O: the
 * Postgres store keeps one and runs its plans in transactions; tests drive
 * it directly.
 *
 * A process charges a windowed rate only from room it reserved in Postgres.
 * A reservation of n calls (and c cost units) is a row counted in the window
 * from when it was taken until its lease time plus the window have passed,
 * so every request charged from it, at any time within its lease, stays
 * counted for a whole window after it. A new reservation is granted only if
 * the rows still counted leave room for it, with the key's row locked, so
 * the rows counted at any moment never hold more than the rate allows, and
 * neither do the requests charged from them, whatever the processes.
 */
import type { LedgerCharge, WindowRefusal } from "../kernel/internal.js";

/** A windowed rate's ledger entry. */
export type WindowCharge = LedgerCharge & { readonly perMs: number };

/** The fewest calls a reservation takes when that many are left (a tool call and its resource access may both count). */
export const MIN_WINDOW_CALLS = 2;

/** Room this process reserved in one window, as Postgres granted it. */
export interface Reservation {
  readonly id: string;
  /** Calls and cost reserved (null: that limit does not apply). */
  readonly calls: number | null;
  readonly cost: number | null;
  usedCalls: number;
  usedCost: number;
  /** Monotonic time after which no request may be charged from it. */
  readonly deadline: number;
}

/** A row of the window as Postgres has it: room reserved by some process, counted until `until` (ms since the epoch, by Postgres). */
export interface WindowRow {
  readonly calls: number | null;
  readonly cost: number | null;
  readonly until: number;
}

/** What to reserve, or, when nothing fits, when something would (ms since the epoch by Postgres; null: never). */
export type WindowPlan = { readonly calls: number | null; readonly cost: number | null } | { readonly retryAt: number | null };

interface WindowState {
  readonly perMs: number;
  readonly reservations: Reservation[];
  /** When Postgres last said this window has room again, or null. */
  fullUntil: number | null;
}

export interface RateBookOptions {
  readonly ttlMs: number;
  /** Share of a rate reserved at once, more than 0 and at most 1. */
  readonly share: number;
}

export class RateBook {
  readonly #windows = new Map<string, WindowState>();
  readonly #options: RateBookOptions;

  constructor(options: RateBookOptions) {
    this.#options = options;
  }

  /** The reservations held in every window, for giving back what was not used. */
  entries(): { readonly key: string; readonly perMs: number; readonly reservations: readonly Reservation[] }[] {
    return [...this.#windows].map(([key, w]) => ({ key, perMs: w.perMs, reservations: w.reservations }));
  }

  clear(): void {
    this.#windows.clear();
  }

  /** A live reservation of `key` with room for one more request of `cost` at monotonic `now`, or undefined. */
  #room(key: string, cost: number, now: number): Reservation | undefined {
    return this.#windows
      .get(key)
      ?.reservations.find((r) => now < r.deadline && (r.calls === null || r.usedCalls + 1 <= r.calls) && (r.cost === null || r.usedCost + cost <= r.cost));
  }

  /** Whether `key` needs a reservation before a request of `cost` can be charged at monotonic `now`. */
  needs(key: string, cost: number, now: number): boolean {
    return this.#room(key, cost, now) === undefined;
  }

  /**
   * Null when a request of `cost` can be charged to `entry` now; otherwise
   * why not and when to retry: when Postgres said the window has room again,
   * or, while this process has yet to ask, `wallNow` plus a second (or the
   * window, if shorter).
   */
  refusal(entry: WindowCharge, cost: number, now: number, wallNow: number): WindowRefusal | null {
    if (this.#room(entry.key, cost, now) !== undefined) return null;
    const window = `${entry.perMs / 1000} s`;
    if (entry.maxCalls === 0) return { because: `allows no calls per ${window}`, retryAt: null };
    if (entry.maxCost !== null && cost > entry.maxCost) return { because: `allows ${entry.maxCost} cost units per ${window}, and the request alone costs ${cost}`, retryAt: null };
    const limit = entry.maxCalls !== null ? `${entry.maxCalls} call${entry.maxCalls === 1 ? "" : "s"}` : `${String(entry.maxCost)} cost units`;
    const full = this.#windows.get(entry.key)?.fullUntil ?? null;
    if (full !== null && full > wallNow) return { because: `allows ${limit} per ${window}, shared by every process`, retryAt: full };
    return { because: `allows ${limit} per ${window}, shared by every process, and this process is reserving room in it`, retryAt: wallNow + Math.min(1000, entry.perMs) };
  }

  /**
   * Charges one request of `cost` to every entry if each has a live
   * reservation with room; otherwise charges nothing. Returns whether it
   * charged, the entries to reserve more for, and the reservations this
   * charge used up (their rows can stop being counted a window from now).
   */
  charge(
    entries: readonly WindowCharge[],
    cost: number,
    now: number,
  ): { readonly charged: boolean; readonly more: readonly WindowCharge[]; readonly spent: readonly { readonly perMs: number; readonly reservation: Reservation }[] } {
    const picked: Reservation[] = [];
    const short: WindowCharge[] = [];
    for (const e of entries) {
      const r = this.#room(e.key, cost, now);
      if (r === undefined) short.push(e);
      else picked.push(r);
    }
    if (short.length > 0) return { charged: false, more: short, spent: [] };
    const more: WindowCharge[] = [];
    const spent: { perMs: number; reservation: Reservation }[] = [];
    picked.forEach((r, i) => {
      r.usedCalls += 1;
      r.usedCost += cost;
      const e = entries[i] as WindowCharge;
      if (r.calls !== null && r.usedCalls === r.calls) {
        spent.push({ perMs: e.perMs, reservation: r });
        const list = (this.#windows.get(e.key) as WindowState).reservations;
        list.splice(list.indexOf(r), 1);
      }
      // Ask for more ahead, once the last reservation with room is half used, so requests rarely wait for room the window has.
      const low = (r.calls !== null && (r.calls - r.usedCalls) * 2 <= r.calls) || (r.cost !== null && (r.cost - r.usedCost) * 2 <= r.cost);
      const others = (this.#windows.get(e.key) as WindowState).reservations.some((x) => x !== r && now < x.deadline && (x.calls === null || x.usedCalls < x.calls));
      if (low && !others) more.push(e);
    });
    return { charged: true, more, spent };
  }

  /** Drops the reservations of `key` whose lease ended by monotonic `now`, and returns them, so what they did not use can be given back. */
  expire(key: string, now: number): Reservation[] {
    const w = this.#windows.get(key);
    if (w === undefined) return [];
    const gone = w.reservations.filter((r) => now >= r.deadline);
    if (gone.length > 0) w.reservations.splice(0, w.reservations.length, ...w.reservations.filter((r) => now < r.deadline));
    return gone;
  }

  /**
   * What to reserve in `entry`'s window, given the rows Postgres counts in it
   * now (row locked, expired rows deleted), for a request of at least
   * `needCost`: a share of the rate, at least one request's worth.
   */
  plan(entry: WindowCharge, rows: readonly WindowRow[], needCost: number): WindowPlan {
    const { share } = this.#options;
    let heldCalls = 0;
    let heldCost = 0;
    for (const r of rows) {
      heldCalls += r.calls ?? 0;
      heldCost += r.cost ?? 0;
    }
    if (entry.maxCost !== null && needCost > entry.maxCost) return { retryAt: null };
    const calls = entry.maxCalls === null ? null : Math.min(entry.maxCalls - heldCalls, Math.max(MIN_WINDOW_CALLS, Math.ceil(entry.maxCalls * share)));
    const cost = entry.maxCost === null ? null : Math.min(entry.maxCost - heldCost, Math.max(entry.maxCost * share, needCost));
    if ((calls === null || calls >= 1) && (cost === null || cost >= needCost)) return { calls, cost };
    // Full: the window has room for one request once enough of the oldest rows stop being counted.
    let freedCalls = 0;
    let freedCost = 0;
    for (const r of [...rows].sort((a, b) => a.until - b.until)) {
      freedCalls += r.calls ?? 0;
      freedCost += r.cost ?? 0;
      const callsFit = entry.maxCalls === null || heldCalls - freedCalls + 1 <= entry.maxCalls;
      const costFits = entry.maxCost === null || heldCost - freedCost + needCost <= entry.maxCost;
      if (callsFit && costFits) return { retryAt: r.until };
    }
    return { retryAt: null };
  }

  /** Records a reservation Postgres committed; `sentAt` is when its transaction was sent, so its lease ends no later than Postgres counts it. */
  add(entry: WindowCharge, reservation: { readonly id: string; readonly calls: number | null; readonly cost: number | null }, sentAt: number): void {
    const w = this.#state(entry);
    w.reservations.push({ ...reservation, usedCalls: 0, usedCost: 0, deadline: sentAt + this.#options.ttlMs });
    w.fullUntil = null;
  }

  /** Records that the window had no room, and when Postgres says it will. */
  full(entry: WindowCharge, retryAt: number | null): void {
    this.#state(entry).fullUntil = retryAt;
  }

  #state(entry: WindowCharge): WindowState {
    let w = this.#windows.get(entry.key);
    if (w === undefined) {
      w = { perMs: entry.perMs, reservations: [], fullUntil: null };
      this.#windows.set(entry.key, w);
    }
    return w;
  }
}
