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

/**
 * Group commit: concurrent writers share one transaction (and one sync to
 * disk), and each one's promise settles only when the transaction that holds
 * its item has committed, or rejects when it failed. So batching never lets
 * a caller go on before its item is durable.
 *
 * A deferred item (an outcome completing an intent) has no waiter: it rides
 * with the next batch, or is flushed on the next turn of the event loop if
 * none comes first, so a call costs one transaction, not two. A deferred item
 * in a batch that fails is tried again with the next one, a few times.
 */
export class GroupCommit<T> {
  readonly #flush: FlushBatch<T>;
  readonly #maxBatch: number;
  readonly #queue: Waiting<T>[] = [];
  #draining: Promise<void> | null = null;
  #later: NodeJS.Immediate | null = null;

  constructor(flush: FlushBatch<T>, maxBatch: number) {
    this.#flush = flush;
    this.#maxBatch = maxBatch;
  }

  /** Resolves once `item` is committed; rejects with the flush's error otherwise. */
  submit(item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.#queue.push({ item, resolve, reject, attempts: 0 }));
    this.#draining ??= this.#drain();
    return done;
  }

  /** Queues `item` for the next transaction without waiting for it. */
  defer(item: T): void {
    this.#queue.push({ item, attempts: 0 });
    if (this.#draining === null) {
      this.#later ??= setImmediate(() => {
        this.#later = null;
        this.#draining ??= this.#drain();
      });
    }
  }

  /** Resolves when every item submitted or deferred so far has settled (deferred items left from a failed batch get one more try). */
  async idle(): Promise<void> {
    if (this.#later !== null) {
      clearImmediate(this.#later);
      this.#later = null;
    }
    if (this.#queue.length > 0) this.#draining ??= this.#drain();
    while (this.#draining !== null) await this.#draining;
  }

  async #drain(): Promise<void> {
    // Writers submitted in the same synchronous run (e.g. a Promise.all) join the first
    // batch; a lone writer is flushed at once, with no wait for a later turn of the event
    // loop. Writers arriving while a flush runs form the next batch.
    await Promise.resolve();
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
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
        // Kept for the next batch, which someone's write will bring; none is started for them alone.
        if (retry.length > 0) {
          this.#queue.unshift(...retry);
          if (this.#queue.every((w) => w.resolve === undefined)) break;
        }
      }
    }
    this.#draining = null;
  }
}
