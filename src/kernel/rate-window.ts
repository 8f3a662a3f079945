/**
 * Windowed rates kept in process: each limited link logs the time and cost
 * of every request it counted, and a request fits when, within the sliding
 * window ending now, the calls and cost counted so far leave room for it.
 * The arithmetic is shared with the token stores, which keep the same log in
 * their database for links whose state lives there.
 */

/** What a window allows: at most `calls` requests and `cost` units within any `perMs` milliseconds (null: unlimited). */
export interface WindowLimits {
  readonly perMs: number;
  readonly calls: number | null;
  readonly cost: number | null;
}

/** One counted request. */
export interface WindowEntry {
  readonly at: number;
  readonly cost: number;
}

/** Why a request does not fit a window, and the earliest time it would (null: never, as the request alone exceeds it). */
export interface WindowRefusal {
  readonly because: string;
  readonly retryAt: number | null;
}

/**
 * Null when one more request of `cost` fits `limits`, given the requests
 * counted within the window ending now (oldest first); otherwise why not,
 * and when it would.
 */
export function windowRefusal(limits: WindowLimits, entries: readonly WindowEntry[], cost: number): WindowRefusal | null {
  const window = seconds(limits.perMs);
  if (limits.calls !== null && entries.length + 1 > limits.calls) {
    // The request fits once enough of the oldest calls have left the window.
    const leaving = entries[entries.length - limits.calls];
    return {
      because: `allows ${limits.calls} call${limits.calls === 1 ? "" : "s"} per ${window}`,
      retryAt: limits.calls === 0 || leaving === undefined ? null : leaving.at + limits.perMs,
    };
  }
  if (limits.cost !== null) {
    let spent = 0;
    for (const e of entries) spent += e.cost;
    if (spent + cost > limits.cost) {
      if (cost > limits.cost) return { because: `allows ${limits.cost} cost units per ${window}, and the request alone costs ${cost}`, retryAt: null };
      let freed = 0;
      for (const e of entries) {
        freed += e.cost;
        if (spent - freed + cost <= limits.cost) return { because: `allows ${limits.cost} cost units per ${window} and has ${limits.cost - spent} left`, retryAt: e.at + limits.perMs };
      }
    }
  }
  return null;
}

/** The log of one rate of one link, oldest first. */
export class RateLog {
  readonly #entries: WindowEntry[] = [];

  /** Whether nothing was ever counted here that is still in a window (a link with an empty log can move its rates to a token store). */
  get empty(): boolean {
    return this.#entries.length === 0;
  }

  /** Drops what fell out of the window ending at `now`. */
  #prune(rate: WindowLimits, now: number): void {
    let drop = 0;
    while (drop < this.#entries.length && (this.#entries[drop] as WindowEntry).at <= now - rate.perMs) drop++;
    if (drop > 0) this.#entries.splice(0, drop);
  }

  /** As `windowRefusal`, for the requests this log counted. */
  refusal(rate: WindowLimits, now: number, cost: number): WindowRefusal | null {
    this.#prune(rate, now);
    return windowRefusal(rate, this.#entries, cost);
  }

  /** Counts one request of `cost` at `now`. */
  add(rate: WindowLimits, now: number, cost: number): void {
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
