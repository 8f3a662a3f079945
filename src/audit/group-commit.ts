/** Writes a batch in one transaction; per item null (written) or the error that refused it alone. Throws when nothing could be written. */
export type FlushBatch<T> = (items: readonly T[]) => Promise<readonly (Error | null)[]>;

interface Waiting<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit: concurrent writers share one transaction (and one sync to
 * disk), and each one's promise settles only when the transaction that holds
 * its item has committed, or rejects when it failed. So batching never lets
 * a caller go on before its event is durable.
 */
export class GroupCommit<T> {
  readonly #flush: FlushBatch<T>;
  readonly #maxBatch: number;
  readonly #queue: Waiting<T>[] = [];
  #draining: Promise<void> | null = null;

  constructor(flush: FlushBatch<T>, maxBatch: number) {
    this.#flush = flush;
    this.#maxBatch = maxBatch;
  }

  /** Resolves once `item` is committed; rejects with the flush's error otherwise. */
  submit(item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.#queue.push({ item, resolve, reject }));
    this.#draining ??= this.#drain();
    return done;
  }

  /** Resolves when every item submitted so far has settled. */
  async idle(): Promise<void> {
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
          if (error === null) w.resolve();
          else w.reject(error);
        });
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    }
    this.#draining = null;
  }
}
