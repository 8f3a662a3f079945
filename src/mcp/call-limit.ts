/**
 * How many tool calls the gateway runs at once. Calls of one session or of
 * many run in parallel up to `maxConcurrentCalls`; later ones wait their turn
 * in order of arrival, at most `maxQueuedCalls` of them, and a call beyond
 * that is refused at once with LimitExceeded, so a flood of calls costs a
 * bounded amount of memory and the calls already admitted finish.
 */
import { LimitExceeded } from "../kernel/index.js";

/** Runs `call` when a turn is free; rejects with LimitExceeded when too many calls wait already. */
export type CallLimiter = <T>(call: () => Promise<T>) => Promise<T>;

/** A limiter allowing `maxConcurrent` calls at once and `maxQueued` waiting. */
export function callLimiter(maxConcurrent: number, maxQueued: number): CallLimiter {
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
        throw new LimitExceeded(`the gateway is running ${maxConcurrent} calls and ${maxQueued} more are waiting (maxQueuedCalls); try again shortly`, "maxQueuedCalls");
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
