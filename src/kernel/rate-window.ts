/**
 * Windowed rates kept in process: each limited link logs the time and cost
 * of every request it counted, and a request fits when, within the sliding
 * window ending now, the calls and cost counted so far leave room for it.
 */
import type { CompiledRate } from "./rules.js";

/** One counted request. */
interface Entry {
  readonly at: number;
  readonly cost: number;
}

/** The log of one rate of one link, oldest first. */
export class RateLog {
  readonly #entries: Entry[] = [];

  /** Drops what fell out of the window ending at `now`. */
  #prune(rate: CompiledRate, now: number): void {
    let drop = 0;
    while (drop < this.#entries.length && (this.#entries[drop] as Entry).at <= now - rate.perMs) drop++;
    if (drop > 0) this.#entries.splice(0, drop);
  }

  /**
   * Null when one more request of `cost` fits the window ending at `now`;
   * otherwise why not, and the earliest time it would fit (null: never, as
   * the request alone exceeds the rate).
   */
  refusal(rate: CompiledRate, now: number, cost: number): { readonly because: string; readonly retryAt: number | null } | null {
    this.#prune(rate, now);
    const entries = this.#entries;
    const window = seconds(rate.perMs);
    if (rate.calls !== null && entries.length + 1 > rate.calls) {
      // The request fits once enough of the oldest calls have left the window.
      const leaving = entries[entries.length - rate.calls];
      return { because: `allows ${rate.calls} call${rate.calls === 1 ? "" : "s"} per ${window}`, retryAt: rate.calls === 0 || leaving === undefined ? null : leaving.at + rate.perMs };
    }
    if (rate.cost !== null) {
      let spent = 0;
      for (const e of entries) spent += e.cost;
      if (spent + cost > rate.cost) {
        if (cost > rate.cost) return { because: `allows ${rate.cost} cost units per ${window}, and the request alone costs ${cost}`, retryAt: null };
        let freed = 0;
        for (const e of entries) {
          freed += e.cost;
          if (spent - freed + cost <= rate.cost) return { because: `allows ${rate.cost} cost units per ${window} and has ${rate.cost - spent} left`, retryAt: e.at + rate.perMs };
        }
      }
    }
    return null;
  }

  /** Counts one request of `cost` at `now`. */
  add(rate: CompiledRate, now: number, cost: number): void {
    // A rate of calls alone needs no record of cost-free requests beyond its limit; its log stays as long as the limit.
    this.#entries.push({ at: now, cost });
    if (rate.cost === null && rate.calls !== null && this.#entries.length > rate.calls) this.#entries.splice(0, this.#entries.length - rate.calls);
  }
}

function seconds(ms: number): string {
  const s = ms / 1000;
  if (s % 86400 === 0) return s === 86400 ? "day" : `${s / 86400} days`;
  if (s % 3600 === 0) return s === 3600 ? "hour" : `${s / 3600} hours`;
  if (s % 60 === 0) return s === 60 ? "minute" : `${s / 60} minutes`;
  return s === 1 ? "second" : `${s} seconds`;
}
