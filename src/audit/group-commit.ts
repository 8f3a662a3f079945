/** Writes a batch in one transaction; per item null (written) or the error that refused it alone. Throws when nothing could be written. */
export type FlushBatch<T> = (items: readonly T[]) => Promise<readonly (Error | null)[]>;

interface Waiting<T> {
  readonly item: T;
  /** Absent for a deferred item: nobody waits for it. */
  readonly resolve?: () => void;
  readonly reject?: (error: unknown) => void;
  readonly attempts: number;
}

/** How many transactions a deferred item may fail in before it is given up. */
const DEFERRED_ATTEMPTS = 3;

/** How long a deferred item waits for a batch to ride with before it is flushed on its own (default). */
export const DEFERRED_FLUSH_MS = 25;

/**
 * Group commit: concurrent writers share one transaction (and one sync to
 * disk), and each one's promise settles only when the transaction that holds
 * its item has committed, or rejects when it failed. So batching never lets
 * a caller go on before its item is durable.
 *
 * A deferred item (an outcome completing an intent) has no waiter: it rides
 * with the next batch someone waits for, or is flushed on its own once it has
 * waited `deferMs` with none coming, so a call costs one transaction, not two.
 * A deferred item in a batch that fails is tried again with the next one, a
 * few times.
 */
export class GroupCommit<T> {
  readonly #flush: FlushBatch<T>;
  readonly #maxBatch: number;
  readonly #deferMs: number;
  readonly #queue: Waiting<T>[] = [];
  /** How many items in the queue have a waiter. */
  #waiters = 0;
  /** Set while deferred items alone are to be flushed too (their time is up, or `idle` asked). */
  #everything = false;
  #draining: Promise<void> | null = null;
  #later: NodeJS.Timeout | null = null;

  constructor(flush: FlushBatch<T>, maxBatch: number, deferMs = DEFERRED_FLUSH_MS) {
    this.#flush = flush;
    this.#maxBatch = maxBatch;
    this.#deferMs = deferMs;
  }

  /** Resolves once `item` is committed; rejects with the flush's error otherwise. */
  submit(item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.#queue.push({ item, resolve, reject, attempts: 0 }));
    this.#waiters += 1;
    this.#draining ??= this.#drain();
    return done;
  }

  /** Queues `item` for the next transaction without waiting for it. */
  defer(item: T): void {
    this.#queue.push({ item, attempts: 0 });
    this.#schedule();
  }

  /** Resolves when every item submitted or deferred so far has settled (deferred items left from a failed batch get one more try). */
  async idle(): Promise<void> {
    this.#cancelTimer();
    if (this.#queue.length > 0) {
      this.#everything = true;
      this.#draining ??= this.#drain();
    }
    while (this.#draining !== null) await this.#draining;
  }

  /** Flushes the deferred items on their own once they have waited long enough, unless a batch takes them first. */
  #schedule(): void {
    if (this.#later !== null || this.#draining !== null) return;
    this.#later = setTimeout(() => {
      this.#later = null;
      this.#everything = true;
      this.#draining ??= this.#drain();
    }, this.#deferMs);
  }

  #cancelTimer(): void {
    if (this.#later === null) return;
    clearTimeout(this.#later);
    this.#later = null;
  }

  async #drain(): Promise<void> {
    // The flush waits for the end of this turn of the event loop (setImmediate runs once the
    // I/O callbacks that are ready have run), not for a timer: a lone writer is flushed as
    // soon as the process has nothing else ready, while the intents of calls whose requests
    // have already arrived join its batch. An engine that writes synchronously (SQLite)
    // blocks the process while it commits, so no writer can arrive during a flush: without
    // this wait, concurrent calls over the network each committed alone. Writers arriving
    // while an asynchronous flush runs form the next batch. Deferred items ride along; left
    // alone, they wait for the next writer or their time.
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.#cancelTimer();
    while (this.#waiters > 0 || (this.#everything && this.#queue.length > 0)) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      for (const w of batch) if (w.resolve !== undefined) this.#waiters -= 1;
      try {
        const results = await this.#flush(batch.map((w) => w.item));
        batch.forEach((w, i) => {
          const error = results[i] ?? null;
          if (error === null) w.resolve?.();
          else w.reject?.(error);
        });
      } catch (error) {
        const retry = batch.filter((w) => w.resolve === undefined && w.attempts + 1 < DEFERRED_ATTEMPTS).map((w) => ({ ...w, attempts: w.attempts + 1 }));
        for (const w of batch) w.reject?.(error);
        // Kept for the next batch someone's write brings, or their own once their time is up again.
        if (retry.length > 0) {
          this.#queue.unshift(...retry);
          if (this.#waiters === 0) break;
        }
      }
    }
    this.#everything = false;
    this.#draining = null;
    if (this.#queue.length > 0) this.#schedule();
  }
}
