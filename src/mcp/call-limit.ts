/**
 * How many tool calls the gateway runs at once. Calls of one session or of
 * many run in parallel up to `maxConcurrentCalls`; later ones wait their turn
 * in order of arrival, at most `maxQueuedCalls` of them, and a call beyond
 * that is refused at once with LimitExceeded, so a flood of calls costs a
 * bounded amount of memory and the calls already admitted finish. The HTTP
 * gateway puts one limiter per session (`maxCallsPerSession`) in front of
 * its own, so one session cannot take every turn of the gateway's.
 */
import { LimitExceeded } from "../kernel/index.js";

/** Runs `call` when a turn is free; rejects with LimitExceeded when too many calls wait already. */
export type CallLimiter = <T>(call: () => Promise<T>) => Promise<T>;

/** `inner` behind `outer`: a call takes a turn of `outer` first, then of `inner`, and gives both back when it ends. */
export function chainLimiters(outer: CallLimiter, inner: CallLimiter): CallLimiter {
  return (call) => outer(() => inner(call));
}

/** A limiter allowing `maxConcurrent` calls at once and `maxQueued` waiting; `scope` names whose calls they are in its refusal. */
export function callLimiter(maxConcurrent: number, maxQueued: number, scope = "the gateway"): CallLimiter {
  let running = 0;
  const waiting: (() => void)[] = [];

  const release = () => {
    const next = waiting.shift();
    // The turn passes straight to the next call, so `running` stays the same.
    if (next === undefined) running -= 1;
    else next();
  };

  return async <T>(call: () => Promise<T>): Promise<T> => {
    if (running >= maxConcurrent) {
      if (waiting.length >= maxQueued) {
        throw new LimitExceeded(`${scope} is running ${maxConcurrent} calls and ${maxQueued} more are waiting (maxQueuedCalls); try again shortly`, "maxQueuedCalls");
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    } else running += 1;
    try {
      return await call();
    } finally {
      release();
    }
  };
}
