import type { Kysely } from "kysely";
import { AgentcapError, AuditFailure, type AuditEvent, type AuditSink } from "../kernel/index.js";
import type { ChainHead } from "./chain.js";
import { encodeEvent, type EncodedEvent } from "./encoding.js";
import { GroupCommit } from "./group-commit.js";
import { runQuery, type AuditQuery, type AuditRecord } from "./query.js";
import type { Redactor } from "./redaction.js";
import type { AuditDb } from "./schema.js";
import { verifyLog, type VerifyOptions, type VerifyReport } from "./verify.js";

/**
 * The audit log: an AuditSink that resources and the dispatcher write to,
 * plus the query primitive and the verifier. Every event is hash-chained to
 * the one before it and stored append-only.
 */
export interface AuditStore extends AuditSink {
  readonly kind: "sqlite" | "postgres";
  /**
   * Resolves only once the event is committed to the store (batched with
   * concurrent writers into one transaction). Rejects with InvalidInput for a
   * malformed event and with AuditFailure when the store cannot write: either
   * way the event is not in the log and the invocation must fail closed.
   */
  write(event: AuditEvent): Promise<void>;
  /** The events matching every filter, in chain order; InvalidInput for a bad filter. */
  query(query?: AuditQuery): Promise<AuditRecord[]>;
  /** Walks the whole log and reports every edited, missing, reordered or inserted event. */
  verify(options?: VerifyOptions): Promise<VerifyReport>;
  /** The last event's sequence number and hash, or null for an empty log; note it elsewhere to anchor a later verify. */
  head(): Promise<ChainHead | null>;
  /** Waits for pending writes, then closes the store; later writes reject with AuditFailure. */
  close(): Promise<void>;
}

/** What an engine provides to a store. */
export interface AuditBackend {
  readonly kind: AuditStore["kind"];
  /** For reads: queries and verification. */
  readonly db: Kysely<AuditDb>;
  /**
   * Appends a batch in one transaction, chained onto the head the store holds
   * under its write lock. Per event: null when written, or the error that
   * refused it alone. Throws when nothing could be written.
   */
  append(batch: readonly EncodedEvent[]): Promise<readonly (Error | null)[]>;
  close(): Promise<void>;
}

/** Store options shared by both engines. */
export interface CommonStoreOptions {
  /** Most events one transaction holds (default 1000). */
  readonly maxBatch?: number;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Our own typed errors pass through; anything the engine throws becomes an AuditFailure naming what failed. */
function asAuditError(e: unknown, what: string): Error {
  return e instanceof AgentcapError ? e : new AuditFailure(`${what}: ${message(e)}`, { cause: e });
}

/** Builds the store over an engine. */
export function createAuditStore(backend: AuditBackend, redact: Redactor, options: CommonStoreOptions = {}): AuditStore {
  let closed = false;
  const commit = new GroupCommit<EncodedEvent>(async (batch) => {
    try {
      return await backend.append(batch);
    } catch (e) {
      throw asAuditError(e, `the ${backend.kind} audit store could not write ${batch.length} event(s), so their invocations fail closed`);
    }
  }, options.maxBatch ?? 1000);

  const reading = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    if (closed) throw new AuditFailure(`the audit store is closed; cannot ${what}`);
    try {
      return await run();
    } catch (e) {
      throw asAuditError(e, `the ${backend.kind} audit store could not ${what}`);
    }
  };

  return Object.freeze({
    kind: backend.kind,
    write: async (event: AuditEvent) => {
      if (closed) throw new AuditFailure("the audit store is closed; the event was not written, so the invocation fails closed");
      await commit.submit(encodeEvent(event, redact));
    },
    query: (query: AuditQuery = {}) => reading("run the query", () => runQuery(backend.db, query)),
    verify: (options: VerifyOptions = {}) => reading("verify the log", () => verifyLog(backend.db, options)),
    head: () =>
      reading("read the head of the log", async () => {
        const row = await backend.db.selectFrom("audit_events").select(["seq", "hash"]).orderBy("seq", "desc").limit(1).executeTakeFirst();
        return row ?? null;
      }),
    close: async () => {
      if (closed) return;
      closed = true;
      await commit.idle();
      await backend.close();
    },
  });
}
