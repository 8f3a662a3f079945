/** A source of the current time in milliseconds since the epoch; injectable so expiry is testable. */
export interface Clock {
  now(): number;
}

// Captured once, when agentcap loads: code that later replaces `Date.now`, `globalThis.Date` or
// `performance.now` cannot move agentcap's clocks, so it cannot revive expired authority.
const wallNow = Date.now;
const monotonicNow = performance.now.bind(performance);

/** The wall clock as it was when agentcap loaded; later changes to the `Date` global do not affect it. */
export const systemClock: Clock = Object.freeze({ now: () => wallNow() });

/** Milliseconds from an arbitrary origin that never step back, captured like `systemClock`: for leases and throttles, not for expiry. */
export const monotonicClock: Clock = Object.freeze({ now: () => monotonicNow() });

/** A clock that only moves when told to: for tests and simulations. */
export interface ManualClock extends Clock {
  /** Moves the clock forward by `ms` milliseconds. */
  advance(ms: number): void;
  /** Sets the clock to `ms` milliseconds since the epoch. */
  set(ms: number): void;
}

/** Creates a ManualClock starting at `start` (default: the current wall time). */
export function createManualClock(start: number = wallNow()): ManualClock {
  let current = start;
  return Object.freeze({
    now: () => current,
    advance: (ms: number) => {
      current += ms;
    },
    set: (ms: number) => {
      current = ms;
    },
  });
}
