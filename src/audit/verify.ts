import type { Kysely } from "kysely";
import { z } from "zod";
import { InvalidInput } from "../kernel/index.js";
import { describeIssues } from "../kernel/internal.js";
import type { StoredLink } from "./append-plan.js";
import { chainHash, type ChainHead } from "./chain.js";
import { ChainWalker, type HashLookup, type TamperProblem } from "./chain-walker.js";
import { verifiedCheckpoints } from "./checkpoint.js";
import { columnsOf, leafText, lineageIdsOf, outcomeColumns, PHASE, type EventColumns } from "./encoding.js";
import { consistencyProof, Frontier, frontierFrom, frontierSlots, type SubtreeLookup } from "./merkle.js";
import { leafHash, readUnsignedCheckpoint, verifyCheckpoint, verifyConsistency, type Checkpoint, type Retention } from "./proof-verifier.js";
import { loadLinks } from "./query.js";
import { DERIVED_COLUMNS, type AuditDb, type EventsTable } from "./schema.js";

/** How to verify. */
export interface VerifyOptions {
  /**
   * Signed checkpoints of this log (C2SP signed notes, as the store writes
   * them). Each must verify with `verifierKey`; the log must still hash to
   * the root each one signed at its size, and successive ones must be
   * consistent (RFC 9162 consistency proofs). Without them, a rewrite that
   * recomputes every hash, a truncated end or a replaced database cannot be
   * told from an honest log.
   */
  readonly checkpoints?: readonly string[];
  /** The checkpoints' verifier key, `<name>+<key id>+<base64 key>`. */
  readonly verifierKey?: string;
  /** Stop after this many problems (default 100). */
  readonly maxProblems?: number;
}

/** An intent with no outcome in the log: in flight, or its process stopped between acting and recording how it ended. */
export interface OpenIntent {
  readonly seq: number;
  readonly id: string;
}

/** The outcome of walking the whole log. */
export interface VerifyReport {
  /** True when no problem was found. */
  readonly ok: boolean;
  /** How many entries were checked. */
  readonly events: number;
  /** The last entry checked. */
  readonly head: ChainHead | null;
  /** The Merkle tree of the entries checked: its size and base64 root hash. */
  readonly tree: { readonly size: number; readonly root: string };
  /** How many signed checkpoints the log was checked against, and the largest size among them (null when none). */
  readonly checkpoints: { readonly checked: number; readonly latest: number | null };
  /**
   * When the log was pruned by retention: entries 1 to `upTo` were deleted on
   * purpose, by a prune whose record is a signed checkpoint (`signed` is
   * false when verified without the key, from the record the log holds), and
   * the entries after them were checked from that record. Null when nothing
   * was pruned. Entries missing without such a record are reported as problems.
   */
  readonly pruned: { readonly upTo: number; readonly before: number; readonly at: number; readonly signed: boolean } | null;
  /** Intents without an outcome (at most 100 listed; `openIntentCount` has them all). Not tampering: see OpenIntent. */
  readonly openIntents: readonly OpenIntent[];
  readonly openIntentCount: number;
  readonly problems: readonly TamperProblem[];
  /** False when verification stopped at `maxProblems` before the end of the log. */
  readonly complete: boolean;
}

const PAGE = 2000;
const LINK_CACHE = 50_000;
const OPEN_LISTED = 100;
// Lookups outside the pages in memory scan the table; past this many, an unexplained link is reported as a chain break.
const MAX_FAR_LOOKUPS = 20;

const optionsSchema = z.strictObject({
  checkpoints: z.array(z.string()).optional(),
  verifierKey: z.string().min(1).optional(),
  maxProblems: z.number().int().min(1).max(10_000).optional(),
});

/** Stored subtree hashes, for consistency proofs. A leaf pruned by retention is found in audit_tree when the prune kept it. */
export function storedSubtrees(db: Kysely<AuditDb>): SubtreeLookup {
  return async (level, index) => {
    const tree = () => db.selectFrom("audit_tree").select("hash").where("level", "=", level).where("idx", "=", index).executeTakeFirst();
    const row = level === 0 ? ((await db.selectFrom("audit_events").select("leaf as hash").where("seq", "=", index + 1).executeTakeFirst()) ?? (await tree())) : await tree();
    if (row === undefined) throw new InvalidInput(`the log's Merkle tree has no subtree at level ${String(level)}, index ${String(index)}`);
    return Buffer.from(row.hash, "hex");
  };
}

/** What a prune by retention learns from the walk it verifies the log with before pruning (see retention.ts). */
export interface VerifyHooks {
  /** Called once the walk has rebuilt the tree of `size` entries: that tree, and entry `size`'s chain hash. */
  readonly reached?: { readonly size: number; readonly then: (tree: Frontier, chainHash: string) => void };
}

/**
 * Where a log pruned by retention begins: the record (a retention
 * checkpoint) of the latest prune before its first entry, from the
 * checkpoints given or from those the log holds, verified with the key when
 * there is one; the log's own records are read as they are otherwise.
 */
async function retentionAnchor(db: Kysely<AuditDb>, good: readonly Checkpoint[], verifierKey: string | undefined, report: (p: TamperProblem) => void): Promise<{ retention: Retention; signed: boolean } | null> {
  const first = await db.selectFrom("audit_events").select("seq").orderBy("seq").limit(1).executeTakeFirst();
  if (first === undefined || first.seq === 1) return null;
  const records: { retention: Retention; signed: boolean }[] = good.flatMap((c) => (c.retention === undefined ? [] : [{ retention: c.retention, signed: true }]));
  for (const row of await retentionRows(db)) {
    const read = verifierKey === undefined ? readUnsignedCheckpoint(row.note) : verifyCheckpoint(row.note, verifierKey);
    if (read.ok && read.value.retention !== undefined) records.push({ retention: read.value.retention, signed: verifierKey !== undefined });
    else report({ kind: "checkpoint", seq: row.up_to, eventId: null, message: `the log's record of a prune up to entry ${String(row.up_to)} is refused: ${read.ok ? "it records no prune" : read.reason}` });
  }
  const before = records.filter((r) => r.retention.upTo < first.seq);
  return before.sort((a, b) => b.retention.upTo - a.retention.upTo)[0] ?? null;
}

/** The log's records of prunes, oldest first; none for a log made before retention existed (opened read-only, without the table). */
export async function retentionRows(db: Kysely<AuditDb>): Promise<{ up_to: number; note: string; at: number }[]> {
  try {
    return await db.selectFrom("audit_retention").select(["up_to", "note", "at"]).orderBy("up_to").execute();
  } catch {
    // Without the table nothing was pruned; a log missing entries then fails verification as it should.
    return [];
  }
}

/**
 * Walks the log page by page in order, recomputing every leaf and chain
 * hash, following the chain of previous hashes, rebuilding the Merkle tree
 * and comparing its root with every signed checkpoint given at that
 * checkpoint's size, and checking that the query columns and the lineage
 * index agree with each entry and that every outcome follows its intent.
 * It needs no snapshot: the log only grows, so rows appended while it runs
 * are simply checked too.
 */
export async function verifyLog(db: Kysely<AuditDb>, options: VerifyOptions = {}, hooks: VerifyHooks = {}): Promise<VerifyReport> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidInput(describeIssues("verify options", parsed.error));
  const { checkpoints: notes = [], verifierKey, maxProblems = 100 } = parsed.data;
  if (notes.length > 0 && verifierKey === undefined) throw new InvalidInput("verify options: checkpoints need the verifierKey they were signed with");

  const problems: TamperProblem[] = [];
  const report = (p: TamperProblem) => {
    if (problems.length < maxProblems) problems.push(p);
  };
  const full = () => problems.length >= maxProblems;

  const { good, bad } = verifierKey === undefined ? { good: [], bad: [] } : verifiedCheckpoints(notes, verifierKey);
  for (const b of bad) report({ kind: "checkpoint", seq: 0, eventId: null, message: `a checkpoint was refused: ${b.why}` });
  const bySize = new Map<number, Checkpoint[]>();
  for (const c of good) bySize.set(c.size, [...(bySize.get(c.size) ?? []), c]);

  const near = new Map<string, { seq: number; id: string }>();
  let farLookups = 0;
  const lookup: HashLookup = async (hash) => {
    const found = near.get(hash);
    if (found !== undefined || farLookups >= MAX_FAR_LOOKUPS) return found ?? null;
    farLookups += 1;
    return (await db.selectFrom("audit_events").select(["seq", "id"]).where("hash", "=", hash).limit(1).executeTakeFirst()) ?? null;
  };
  const anchor = await retentionAnchor(db, good, verifierKey, report);
  const walker = new ChainWalker(lookup, report, anchor === null ? null : { seq: anchor.retention.upTo, hash: anchor.retention.chainHash });
  const links = new Map<string, StoredLink>();
  // A pruned log's tree grows from the subtrees its retention record signed.
  const tree = anchor === null ? new Frontier() : frontierFrom(anchor.retention.upTo, anchor.retention.frontier);
  if (anchor !== null) await checkKeptSubtrees(db, anchor.retention, report);
  const open = new Map<string, { readonly seq: number; readonly columns: EventColumns }>();
  const compareRoot = () => {
    for (const c of bySize.get(tree.size) ?? []) {
      if (!tree.root().equals(c.rootHash)) {
        report({
          kind: "rewritten",
          seq: tree.size,
          eventId: null,
          message: `the first ${String(c.size)} entries no longer hash to the root the checkpoint of size ${String(c.size)} signed: the log was changed up to there (edited, deleted, inserted or replaced, even with its hashes recomputed)`,
        });
      }
    }
  };
  compareRoot();

  let previous: EventsTable[] = [];
  let page = await fetchPage(db, 0);
  let events = 0;
  while (page.length > 0 && !full()) {
    const lastSeq = (page.at(-1) as EventsTable).seq;
    const next = page.length === PAGE ? await fetchPage(db, lastSeq) : [];
    near.clear();
    for (const r of [...previous, ...page, ...next]) near.set(r.hash, { seq: r.seq, id: r.id });

    const bodies = page.map((r) => parseBody(r.body));
    const index = await fetchLineageIndex(db, (page[0] as EventsTable).seq, lastSeq);
    if (links.size > LINK_CACHE) links.clear();
    await loadLinks(db, bodies.flatMap(lineageIdsOf), links);

    for (const [i, row] of page.entries()) {
      const body = bodies[i];
      const ids = lineageIdsOf(body);
      const missing = ids.find((id) => !links.has(id));
      const leaf = missing === undefined ? leafHash(leafText(row.body, ids.map((id) => links.get(id)?.text ?? ""))) : null;
      const derived = derivedColumns(row, body, open, report);
      checkColumns(row, derived, ids.map((id) => links.get(id)?.num), index.get(row.seq) ?? [], report);
      await walker.push({
        seq: row.seq,
        id: row.id,
        prevHash: row.prev_hash,
        hash: row.hash,
        recomputed: leaf === null ? null : chainHash(row.prev_hash, leaf.toString("hex")),
        ...(missing === undefined ? {} : { unreadable: `its lineage link ${missing} is missing from the log` }),
      });
      // The tree is rebuilt from what the entries say now, whatever their stored hashes claim.
      tree.push(leaf ?? leafHash(row.body), () => undefined);
      if (hooks.reached?.size === tree.size) hooks.reached.then(tree.copy(), row.hash);
      compareRoot();
      events += 1;
      if (full()) break;
    }
    previous = page;
    page = next;
  }
  const complete = !full();
  const latest = good.at(-1)?.size ?? null;
  if (complete) {
    if (latest !== null && tree.size < latest) {
      report({
        kind: "truncated",
        seq: latest,
        eventId: null,
        message: `the log ends at seq ${String(tree.size)}, but a signed checkpoint covers ${String(latest)} entries: entries were deleted from its end (or the database was replaced)`,
      });
    }
    // Checkpoints below the prune cannot be proved consistent any more (their subtrees went with it); they were when it was made.
    await checkConsistency(db, good.filter((c) => c.size >= (anchor?.retention.upTo ?? 0)), tree.size, report);
  }
  return {
    ok: problems.length === 0,
    events,
    head: walker.head,
    tree: { size: tree.size, root: tree.root().toString("base64") },
    checkpoints: { checked: good.length, latest },
    pruned: anchor === null ? null : { upTo: anchor.retention.upTo, before: anchor.retention.before, at: anchor.retention.at, signed: anchor.signed },
    openIntents: [...open.entries()].slice(0, OPEN_LISTED).map(([id, o]) => ({ seq: o.seq, id })),
    openIntentCount: open.size,
    problems,
    complete,
  };
}

/** The subtrees a prune kept for the tree of the pruned entries must be those its record signed: later entries' proofs and appends are built on them. */
async function checkKeptSubtrees(db: Kysely<AuditDb>, retention: Retention, report: (p: TamperProblem) => void): Promise<void> {
  const lookup = storedSubtrees(db);
  const slots = frontierSlots(retention.upTo);
  for (const [i, slot] of slots.entries()) {
    let stored: Buffer | null = null;
    try {
      stored = await lookup(slot.level, slot.index);
    } catch (e) {
      if (!(e instanceof InvalidInput)) throw e;
    }
    if (stored === null || !stored.equals(retention.frontier[i] as Buffer)) {
      report({
        kind: "rewritten",
        seq: retention.upTo,
        eventId: null,
        message: `the subtree of the pruned entries at level ${String(slot.level)}, index ${String(slot.index)} is ${stored === null ? "missing from" : "not the one the retention record signed in"} the log: proofs of later entries against it would not hold`,
      });
    }
  }
}

/** Successive signed checkpoints must describe one append-only log: an RFC 9162 consistency proof from each to the next must hold. */
async function checkConsistency(db: Kysely<AuditDb>, checkpoints: readonly Checkpoint[], size: number, report: (p: TamperProblem) => void): Promise<void> {
  const lookup = storedSubtrees(db);
  for (let i = 1; i < checkpoints.length; i++) {
    const [a, b] = [checkpoints[i - 1] as Checkpoint, checkpoints[i] as Checkpoint];
    if (a.size === b.size) {
      if (!a.rootHash.equals(b.rootHash)) report({ kind: "checkpoint", seq: a.size, eventId: null, message: `two checkpoints of size ${String(a.size)} sign different roots: the log was forked` });
      continue;
    }
    if (b.size > size) continue;
    let holds = false;
    try {
      holds = verifyConsistency(a.size, b.size, await consistencyProof(a.size, b.size, lookup), a.rootHash, b.rootHash);
    } catch (e) {
      if (!(e instanceof InvalidInput)) throw e;
    }
    if (!holds) {
      report({
        kind: "checkpoint",
        seq: b.size,
        eventId: null,
        message: `the checkpoints of sizes ${String(a.size)} and ${String(b.size)} cannot be shown consistent from the log: no consistency proof between them holds`,
      });
    }
  }
}

function fetchPage(db: Kysely<AuditDb>, after: number): Promise<EventsTable[]> {
  return db.selectFrom("audit_events").selectAll().where("seq", ">", after).orderBy("seq").limit(PAGE).execute();
}

/** The lineage index rows of a range of events: per event, link keys by position. */
async function fetchLineageIndex(db: Kysely<AuditDb>, first: number, last: number): Promise<Map<number, number[]>> {
  const rows = await db
    .selectFrom("audit_event_links")
    .select(["event_seq", "link_num", "position"])
    .where("event_seq", ">=", first)
    .where("event_seq", "<=", last)
    .orderBy("event_seq")
    .orderBy("position")
    .execute();
  const out = new Map<number, number[]>();
  for (const r of rows) {
    const list = out.get(r.event_seq) ?? [];
    // A gap in positions shows up as a hole, which never equals a real lineage.
    list[r.position] = r.link_num;
    out.set(r.event_seq, list);
  }
  return out;
}

function parseBody(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/**
 * The columns an entry's body (and, for an outcome, its intent's) says it
 * has, or null when its body is not an entry. Keeps `open` up to date:
 * intents waiting for their outcome. An outcome with no intent before it is
 * reported.
 */
function derivedColumns(row: EventsTable, body: unknown, open: Map<string, { readonly seq: number; readonly columns: EventColumns }>, report: (p: TamperProblem) => void): EventColumns | null {
  const entry = typeof body === "object" && body !== null ? (body as { entry?: unknown }).entry : undefined;
  if (entry !== "outcome") {
    const columns = columnsOf(body);
    if (columns?.phase === PHASE.intent) open.set(columns.id, { seq: row.seq, columns });
    return columns;
  }
  const id = (body as { id?: unknown }).id;
  const intent = typeof id === "string" ? open.get(id) : undefined;
  if (intent === undefined) {
    report({ kind: "orphan", seq: row.seq, eventId: row.id, message: `the outcome at seq ${String(row.seq)} completes event ${String(id)}, whose intent is not in the log before it` });
    return null;
  }
  open.delete(intent.columns.id);
  return outcomeColumns(intent.columns, body);
}

/** The query columns and lineage index of one entry must say what its body says. `lineage` holds its links' keys (undefined when missing). */
function checkColumns(row: EventsTable, derived: EventColumns | null, lineage: readonly (number | undefined)[], indexed: readonly number[], report: (p: TamperProblem) => void): void {
  const where = `event ${row.id} (seq ${row.seq})`;
  const problem = (message: string) => {
    report({ kind: "index", seq: row.seq, eventId: row.id, message });
  };
  if (derived === null) {
    if (row.phase !== PHASE.outcome) problem(`${where}: its body is not an audit entry`);
    return;
  }
  for (const column of DERIVED_COLUMNS) {
    if (row[column] !== derived[column]) {
      problem(`${where}: column ${column} holds ${JSON.stringify(row[column])}, but the entry says ${JSON.stringify(derived[column])}; queries on it would mislead`);
    }
  }
  // A link missing from the log is reported by the walker, as an entry that cannot be rebuilt.
  if (lineage.includes(undefined)) return;
  if (indexed.length !== lineage.length || lineage.some((num, i) => indexed[i] !== num)) {
    problem(`${where}: the lineage index lists links [${indexed.join(", ")}], but the entry's lineage is links [${lineage.join(", ")}]; descendant queries would mislead`);
  }
}
