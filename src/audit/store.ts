import type { Kysely } from "kysely";
import { AgentcapError, AuditFailure, InvalidInput, type AuditCompletion, type AuditEvent, type AuditIntent, type AuditSink } from "../kernel/index.js";
import type { ChainHead } from "./chain.js";
import { Checkpointer, type CheckpointSchedule, type CheckpointSigner, type CheckpointSink } from "./checkpoint.js";
import { encodeCompletion, encodeEvent, encodeIntent, leafText, lineageIdsOf, type EncodedEvent, type EncodedIntent } from "./encoding.js";
import { GroupCommit } from "./group-commit.js";
import type { AuditStream } from "./otlp-stream.js";
import { Frontier, frontierSlots, inclusionProof } from "./merkle.js";
import { EXPORT_FORMAT, readUnsignedCheckpoint, verifyCheckpoint, type ExportLine, type ProofBundle } from "./proof-verifier.js";
import { pruneCutoff, pruneLog, type PruneOptions, type PruneReport } from "./retention.js";
import { loadLinks, runHistogram, runQuery, type AuditQuery, type AuditRecord, type Histogram, type HistogramOptions } from "./query.js";
import type { Redactor } from "./redaction.js";
import type { AuditDb, RetentionTable } from "./schema.js";
import { retentionRows, storedSubtrees, verifyLog, type VerifyOptions, type VerifyReport } from "./verify.js";

/**
 * The audit log: an AuditSink that resources and the dispatcher write to,
 * plus queries, verification and proofs. Entries are appended to a Merkle
 * tree (RFC 9162 style) whose head is signed into checkpoints kept outside
 * the database, and chained to the entry before them.
 */
export interface AuditStore extends AuditSink {
  readonly kind: "sqlite" | "postgres";
  /**
   * Resolves only once the intent is committed to the store (batched with
   * concurrent writers into one transaction). Rejects with InvalidInput for
   * a malformed intent, one the log could not encode, and with AuditFailure
   * when the store cannot write: either way nothing is recorded and the
   * invocation must not act.
   */
  intend(intent: AuditIntent): Promise<void>;
  /**
   * Completes an intent this store recorded. Validated and encoded at once
   * (InvalidInput), then written with the next transaction, without waiting
   * for it: a crash before then leaves the intent without an outcome.
   */
  complete(completion: AuditCompletion): Promise<void>;
  /** Resolves only once the event is committed; InvalidInput for a malformed event, AuditFailure when the store cannot write. */
  write(event: AuditEvent): Promise<void>;
  /** The events matching every filter, in log order; InvalidInput for a bad filter. */
  query(query?: AuditQuery): Promise<AuditRecord[]>;
  /** The events `query` matches (its filters; no page), counted by principal, tool or tenant and span of time, allowed and denied, in one aggregate query. */
  histogram(query: AuditQuery, options: HistogramOptions): Promise<Histogram>;
  /** Walks the whole log against its signed checkpoints and reports every problem; see VerifyOptions. Uses the store's own checkpoint sink and key unless told otherwise. */
  verify(options?: VerifyOptions): Promise<VerifyReport>;
  /** The last entry's sequence number and chain hash, or null for an empty log. */
  head(): Promise<ChainHead | null>;
  /** Signs and writes a checkpoint of the head now (when the store has a checkpoint key); resolves once it is written. */
  checkpoint(): Promise<void>;
  /**
   * The entries of event `id` (its whole entry, or its intent and outcome)
   * with inclusion proofs against the latest checkpoint that covers them,
   * taken from `checkpoints` or the store's sink. AuditFailure when no
   * checkpoint covers the event yet; InvalidInput for an unknown event.
   */
  prove(id: string, options?: { readonly checkpoints?: readonly string[]; readonly verifierKey?: string }): Promise<ProofBundle>;
  /**
   * The log's entries from the first one at or after `since` (ms since the
   * epoch; default the first) to the last one before `until` that the latest
   * signed checkpoint covers, as export lines (see ExportLine): a header with
   * the checkpoint and the range, one line per entry with its sequence
   * number, leaf and inclusion proof, and a trailer with the count and how
   * many newer entries no checkpoint covers yet. With the public key alone,
   * `verifyExport` then finds any gap, edit, reordering or truncation.
   * AuditFailure when no checkpoint covers any entry yet.
   */
  exportEntries(options?: ExportOptions): AsyncGenerator<ExportLine>;
  /**
   * Retention by age: deletes the entries that began before `before`, up to
   * the newest entry covered by a signed checkpoint, keeping every intent
   * whose outcome is not pruned with it (see HeldBack) and the newest entry.
   * The whole log must verify first (AuditFailure otherwise: pruning would
   * delete the evidence); the prune is then signed as a retention checkpoint
   * (written to the checkpoint sink before anything is deleted) from which
   * verify, export and the stream verifier check what remains with the
   * public key alone. Nothing due is a no-op report, not an error.
   * InvalidInput for a bad or future cutoff, or a store without a checkpoint
   * key; AuditFailure for a read-only store.
   */
  prune(options: PruneOptions): Promise<PruneReport>;
  /** The latest prune by retention as the log records it (unverified: `verify` checks it against the key), or null when it was never pruned. */
  retention(): Promise<{ readonly upTo: number; readonly before: number; readonly at: number } | null>;
  /** Waits for pending writes, writes a last checkpoint, then closes the store; later writes reject with AuditFailure. */
  close(): Promise<void>;
}

/** Which entries `exportEntries` writes, and against which checkpoints. */
export interface ExportOptions {
  readonly since?: number;
  readonly until?: number;
  /** Signed checkpoint notes to prove against (default: the store's own). */
  readonly checkpoints?: readonly string[];
  /** Use only checkpoints that verify with this key (default: the store's own key, if it has one). */
  readonly verifierKey?: string;
}

/** Entries read from the log per query while exporting. */
const EXPORT_PAGE = 500;

/** What one appended batch did: per entry null (written) or the error that refused it alone, and the tree it left. */
export interface Appended {
  readonly results: readonly (Error | null)[];
  readonly size: number;
  readonly root: Buffer;
}

/** What an engine provides to a store. */
export interface AuditBackend {
  readonly kind: AuditStore["kind"];
  /** For reads: queries, verification and proofs. */
  readonly db: Kysely<AuditDb>;
  /** False when opened read-only: append and prune reject. */
  readonly writable: boolean;
  /** Appends a batch in one transaction, onto the head the store holds under its write lock. Throws when nothing could be written. */
  append(batch: readonly EncodedEvent[]): Promise<Appended>;
  /** Records a prune by retention and deletes what it prunes, in one transaction under the write lock; resolves with the number of entries deleted. */
  prune(rows: PruneRows): Promise<number>;
  close(): Promise<void>;
}

/** What one prune by retention writes and deletes (see retention.ts). */
export interface PruneRows {
  /** Entries 1 to `upTo` go, with their lineage index rows, the links no remaining entry names, and the subtrees below `upTo` other than `keep`. */
  readonly upTo: number;
  /** The subtrees (level ≥ 1) that make up the tree of `upTo` leaves: kept, for proofs and appends. */
  readonly keep: readonly { readonly level: number; readonly index: number }[];
  /** The last pruned leaf, when it stands alone in that tree: kept at level 0 of audit_tree. */
  readonly leaf: { readonly index: number; readonly hash: string } | null;
  /** The row recording the prune, with its signed checkpoint. */
  readonly record: RetentionTable;
}

/** Where and how a store signs its checkpoints. */
export interface StoreCheckpoints {
  readonly signer: CheckpointSigner;
  readonly origin: string;
  readonly sink: CheckpointSink;
  readonly schedule: CheckpointSchedule;
}

/** Store options shared by both engines. */
export interface CommonStoreOptions {
  /** Most entries one transaction holds (default 1000). */
  readonly maxBatch?: number;
  /** Told of every entry this store writes (sequence number and leaf) and every checkpoint it signs, once committed; see otlpLogStream. */
  readonly stream?: AuditStream;
}

/** The columns an audit log of this version has; an older log lacks some. */
const CURRENT_COLUMNS = ["phase", "leaf"];

/** Refuses to open a log written by an earlier agentcap (its entries are not Merkle leaves). `columns` is empty for a new log. */
export function requireCurrentFormat(columns: readonly string[], what: string): void {
  if (columns.length === 0 || CURRENT_COLUMNS.every((c) => columns.includes(c))) return;
  throw new AuditFailure(`${what} was written by an earlier version of agentcap, without intents and a Merkle tree; keep it aside for reading with that version, and start a new log`);
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Our own typed errors pass through; anything the engine throws becomes an AuditFailure naming what failed. */
function asAuditError(e: unknown, what: string): Error {
  return e instanceof AgentcapError ? e : new AuditFailure(`${what}: ${message(e)}`, { cause: e });
}

/** The tree size a checkpoint note names, read without verifying it (the proof's reader verifies). */
function noteSize(note: string): number {
  const size = Number(note.split("\n")[1]);
  return Number.isSafeInteger(size) ? size : -1;
}

/** Builds the store over an engine. */
export function createAuditStore(backend: AuditBackend, redact: Redactor, options: CommonStoreOptions & { readonly checkpoints?: StoreCheckpoints } = {}): AuditStore {
  let closed = false;
  const stream = options.stream;
  const given = options.checkpoints;
  // A streamed copy needs the checkpoints too: each is pushed once its sink has it.
  const cp =
    given === undefined || stream === undefined
      ? given
      : {
          ...given,
          sink: {
            append: async (note: string) => {
              await given.sink.append(note);
              stream.push([{ checkpoint: note }]);
            },
            read: () => given.sink.read(),
          },
        };
  // A failed checkpoint is tried again with the next one; the error is kept for close to report.
  let checkpointError: AuditFailure | null = null;
  const checkpointer =
    cp === undefined
      ? null
      : new Checkpointer(cp.signer, cp.origin, cp.sink, cp.schedule, (e) => {
          checkpointError = e;
        });
  /** Intents recorded by this store and not completed yet, with what their completion needs. */
  const pending = new Map<string, EncodedIntent>();

  const commit = new GroupCommit<EncodedEvent>(async (batch) => {
    let appended: Appended;
    try {
      appended = await backend.append(batch);
    } catch (e) {
      throw asAuditError(e, `the ${backend.kind} audit store could not write ${batch.length} entr${batch.length === 1 ? "y" : "ies"}, so their invocations fail closed`);
    }
    if (stream !== undefined) {
      // The entries written (not refused) took the sequence numbers ending at the new size, in batch order.
      const written = batch.filter((_, i) => appended.results[i] === null);
      const first = appended.size - written.length + 1;
      stream.push(written.map((e, i) => ({ seq: first + i, leaf: leafText(e.body, e.links.map((l) => l.text)) })));
    }
    checkpointer?.grew(appended.size, appended.root);
    return appended.results;
  }, options.maxBatch ?? 1000);

  const reading = async <T>(what: string, run: () => Promise<T>): Promise<T> => {
    if (closed) throw new AuditFailure(`the audit store is closed; cannot ${what}`);
    // Reads see every write made before them, outcomes included.
    await commit.idle();
    try {
      return await run();
    } catch (e) {
      throw asAuditError(e, `the ${backend.kind} audit store could not ${what}`);
    }
  };

  /** The latest prune as the log records it, read without checking its signature. */
  const latestRetention = async (): Promise<{ upTo: number; before: number; at: number; note: string } | null> => {
    const row = (await retentionRows(backend.db)).at(-1);
    if (row === undefined) return null;
    const read = readUnsignedCheckpoint(row.note);
    const r = read.ok ? read.value.retention : undefined;
    return r === undefined ? null : { upTo: r.upTo, before: r.before, at: r.at, note: row.note };
  };

  const prove = async (id: string, given: { readonly checkpoints?: readonly string[]; readonly verifierKey?: string } = {}): Promise<ProofBundle> => {
    const rows = await backend.db.selectFrom("audit_events").select(["seq", "body"]).where("id", "=", id).orderBy("seq").execute();
    if (rows.length === 0) {
      const pruned = await latestRetention();
      throw new InvalidInput(`no audit event ${id} is in the log${pruned === null ? "" : ` (entries 1 to ${String(pruned.upTo)}, older than ${new Date(pruned.before).toISOString()}, were pruned by retention)`}`);
    }
    const last = (rows.at(-1) as { seq: number }).seq;
    let notes = given.checkpoints ?? (cp === undefined ? [] : await cp.sink.read());
    const key = given.verifierKey ?? cp?.signer.verifierKey;
    if (key !== undefined) notes = notes.filter((n) => verifyCheckpoint(n, key).ok);
    const covering = notes.filter((n) => noteSize(n) >= last).sort((a, b) => noteSize(b) - noteSize(a))[0];
    if (covering === undefined) {
      throw new AuditFailure(`no signed checkpoint covers event ${id} (its last entry is seq ${String(last)}) yet; prove it after the next checkpoint, or write one now (checkpoint())`);
    }
    const size = noteSize(covering);
    const links = await loadLinks(backend.db, rows.flatMap((r) => lineageIdsOf(JSON.parse(r.body) as unknown)));
    const lookup = storedSubtrees(backend.db);
    const entries = [];
    for (const r of rows) {
      const texts = lineageIdsOf(JSON.parse(r.body) as unknown).map((l) => links.get(l)?.text ?? "");
      const proof = await inclusionProof(r.seq - 1, 0, size, lookup);
      entries.push({ index: r.seq - 1, leaf: leafText(r.body, texts), proof: proof.map((h) => h.toString("base64")) });
    }
    return { format: "agentcap.audit.proof/v1", checkpoint: covering, entries };
  };

  const exportEntries = async function* (given: ExportOptions = {}): AsyncGenerator<ExportLine> {
    const time = (v: unknown, name: string): number | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new InvalidInput(`export: ${name} must be a time in milliseconds since the epoch`);
      return v;
    };
    const since = time(given.since, "since");
    const until = time(given.until, "until");
    let notes = given.checkpoints ?? (cp === undefined ? [] : await cp.sink.read());
    const key = given.verifierKey ?? cp?.signer.verifierKey;
    if (key !== undefined) notes = notes.filter((n) => verifyCheckpoint(n, key).ok);
    const latest = [...notes].sort((a, b) => noteSize(b) - noteSize(a))[0];
    if (latest === undefined || noteSize(latest) === 0) throw new AuditFailure("no signed checkpoint covers any entry of the log yet; export after the next checkpoint, or write one now (checkpoint())");
    const size = noteSize(latest);
    const head = await backend.db.selectFrom("audit_events").select("seq").orderBy("seq", "desc").limit(1).executeTakeFirst();
    const pruned = await latestRetention();
    // The range is by sequence number, so a copy can be checked for gaps: from the first entry at or after `since` (or the first
    // a prune by retention left) to the last before `until`. Entries missing without a prune then show as a gap in the copy.
    const first = since === undefined ? (pruned?.upTo ?? 0) + 1 : ((await backend.db.selectFrom("audit_events").select("seq").where("at", ">=", since).orderBy("seq").limit(1).executeTakeFirst())?.seq ?? size + 1);
    let last = size;
    if (until !== undefined) {
      const before = await backend.db.selectFrom("audit_events").select("seq").where("at", "<", until).where("seq", "<=", size).orderBy("seq", "desc").limit(1).executeTakeFirst();
      last = before?.seq ?? 0;
    }
    const to = Math.max(first - 1, last);
    // An export starting where the log was pruned carries the signed record of the prune, so its copy tells retention from deletion.
    yield { format: EXPORT_FORMAT, checkpoint: latest, from: first, to, ...(pruned !== null && pruned.upTo === first - 1 ? { pruned: pruned.note } : {}) };
    // Neighbouring entries' proofs share most of their subtrees: each is read from the log once per export (a bounded cache).
    const stored = storedSubtrees(backend.db);
    const subtrees = new Map<string, Buffer>();
    const lookup = async (level: number, index: number): Promise<Buffer> => {
      const key = `${String(level)}:${String(index)}`;
      let hash = subtrees.get(key);
      if (hash === undefined) {
        hash = await stored(level, index);
        if (subtrees.size >= 65_536) subtrees.clear();
        subtrees.set(key, hash);
      }
      return hash;
    };
    let count = 0;
    for (let from = first; from <= to; from += EXPORT_PAGE) {
      const rows = await backend.db.selectFrom("audit_events").select(["seq", "body"]).where("seq", ">=", from).where("seq", "<=", Math.min(to, from + EXPORT_PAGE - 1)).orderBy("seq").execute();
      const links = await loadLinks(backend.db, rows.flatMap((r) => lineageIdsOf(JSON.parse(r.body) as unknown)));
      for (const r of rows) {
        const texts = lineageIdsOf(JSON.parse(r.body) as unknown).map((l) => links.get(l)?.text ?? "");
        const proof = await inclusionProof(r.seq - 1, 0, size, lookup);
        count += 1;
        yield { seq: r.seq, leaf: leafText(r.body, texts), proof: proof.map((h) => h.toString("base64")) };
      }
    }
    yield { end: true, entries: count, uncovered: Math.max(0, (head?.seq ?? 0) - size) };
  };

  /** Signs a checkpoint of the head as the database has it now: another process may have appended since this one did. */
  const signHead = async (checkpointer: Checkpointer): Promise<void> => {
    const head = await backend.db.selectFrom("audit_events").select("seq").orderBy("seq", "desc").limit(1).executeTakeFirst();
    const size = head?.seq ?? 0;
    const lookup = storedSubtrees(backend.db);
    const frontier = new Frontier(size, await Promise.all(frontierSlots(size).map(async ({ level, index }) => ({ level, hash: await lookup(level, index) }))));
    checkpointer.grew(size, frontier.root());
    await checkpointer.flush();
    if (checkpointError !== null) throw checkpointError;
  };

  return Object.freeze({
    kind: backend.kind,
    intend: async (intent: AuditIntent) => {
      if (closed) throw new AuditFailure("the audit store is closed; the intent was not recorded, so the invocation must not act");
      const encoded = encodeIntent(intent, redact);
      const id = encoded.columns.id;
      if (pending.has(id)) throw new InvalidInput(`audit intent ${id} is already waiting for its outcome; every invocation needs its own event id`);
      pending.set(id, encoded);
      try {
        await commit.submit(encoded);
      } catch (e) {
        pending.delete(id);
        throw e;
      }
    },
    complete: (completion: AuditCompletion) => {
      const id = (completion as Partial<AuditCompletion> | null)?.id;
      const intent = typeof id === "string" ? pending.get(id) : undefined;
      if (intent === undefined) return Promise.reject(new InvalidInput(`no audit intent ${String(id)} recorded by this store is waiting for its outcome`));
      // Encoded before the intent is let go: an invalid completion leaves it waiting, to be completed correctly.
      let encoded: EncodedEvent;
      try {
        encoded = encodeCompletion(completion, intent, redact);
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new Error(String(e)));
      }
      pending.delete(intent.columns.id);
      if (closed) return Promise.reject(new AuditFailure("the audit store is closed; the outcome was not recorded"));
      commit.defer(encoded);
      return Promise.resolve();
    },
    write: async (event: AuditEvent) => {
      if (closed) throw new AuditFailure("the audit store is closed; the event was not written, so the invocation fails closed");
      await commit.submit(encodeEvent(event, redact));
    },
    query: (query: AuditQuery = {}) => reading("run the query", () => runQuery(backend.db, query)),
    histogram: (query: AuditQuery, options: HistogramOptions) => reading("count the events", () => runHistogram(backend.db, query, options)),
    verify: (options: VerifyOptions = {}) =>
      reading("verify the log", async () => {
        const own = options.checkpoints === undefined && cp !== undefined ? { checkpoints: await cp.sink.read(), verifierKey: cp.signer.verifierKey } : {};
        return verifyLog(backend.db, { ...own, ...options });
      }),
    head: () =>
      reading("read the head of the log", async () => {
        const row = await backend.db.selectFrom("audit_events").select(["seq", "hash"]).orderBy("seq", "desc").limit(1).executeTakeFirst();
        return row ?? null;
      }),
    checkpoint: () =>
      reading("write a checkpoint", async () => {
        if (checkpointer === null) throw new InvalidInput("this audit store has no checkpoint key (checkpoints.key); it cannot sign checkpoints");
        await signHead(checkpointer);
      }),
    prove: (id: string, given?: { readonly checkpoints?: readonly string[]; readonly verifierKey?: string }) => reading("prove the event", () => prove(id, given)),
    exportEntries: (given?: ExportOptions) => exportEntries(given),
    prune: async (options: PruneOptions) => {
      const before = pruneCutoff(options);
      if (cp === undefined || checkpointer === null) throw new InvalidInput("this audit store has no checkpoint key (checkpoints.key): a prune must be signed, so that what remains can still be verified");
      if (!backend.writable) throw new AuditFailure(`the ${backend.kind} audit store was opened read-only; open it for writing to prune it`);
      return reading("prune the log", () =>
        pruneLog(
          {
            db: backend.db,
            prune: (rows) => backend.prune(rows),
            signer: cp.signer,
            origin: cp.origin,
            sink: cp.sink,
            checkpointHead: () => signHead(checkpointer),
          },
          before,
        ),
      );
    },
    retention: () =>
      reading("read the log's retention", async () => {
        const r = await latestRetention();
        return r === null ? null : { upTo: r.upTo, before: r.before, at: r.at };
      }),
    close: async () => {
      if (closed) return;
      closed = true;
      await commit.idle();
      await checkpointer?.flush();
      await backend.close();
    },
  });
}
