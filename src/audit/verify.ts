import type { Kysely } from "kysely";
import { z } from "zod";
import { InvalidInput } from "../kernel/index.js";
import { describeIssues } from "../kernel/internal.js";
import type { StoredLink } from "./append-plan.js";
import { chainHash, type ChainHead } from "./chain.js";
import { ChainWalker, type HashLookup, type TamperProblem } from "./chain-walker.js";
import { columnsOf, lineageIdsOf } from "./encoding.js";
import { loadLinks } from "./query.js";
import { DERIVED_COLUMNS, type AuditDb, type EventsTable } from "./schema.js";

/** How to verify. */
export interface VerifyOptions {
  /** A head noted earlier (from `head()`): the log must still contain it, which catches events deleted from the end. */
  readonly anchor?: ChainHead;
  /** Stop after this many problems (default 100). */
  readonly maxProblems?: number;
}

/** The outcome of walking the whole log. */
export interface VerifyReport {
  /** True when no problem was found. */
  readonly ok: boolean;
  /** How many events were checked. */
  readonly events: number;
  /** The last event checked; note it somewhere else to anchor a later verify. */
  readonly head: ChainHead | null;
  readonly problems: readonly TamperProblem[];
  /** False when verification stopped at `maxProblems` before the end of the log. */
  readonly complete: boolean;
}

const PAGE = 2000;
const LINK_CACHE = 50_000;
// Lookups outside the pages in memory scan the table; past this many, an unexplained link is reported as a chain break.
const MAX_FAR_LOOKUPS = 20;

const optionsSchema = z.strictObject({
  anchor: z.strictObject({ seq: z.number().int().positive(), hash: z.string().regex(/^[0-9a-f]{64}$/, "must be a hex SHA-256") }).optional(),
  maxProblems: z.number().int().min(1).max(10_000).optional(),
});

/**
 * Walks the log page by page in chain order, recomputing every hash,
 * following the chain of previous hashes, and checking that the query
 * columns and the lineage index agree with each event. It needs no snapshot:
 * the log only grows, so rows appended while it runs are simply checked too.
 */
export async function verifyLog(db: Kysely<AuditDb>, options: VerifyOptions = {}): Promise<VerifyReport> {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidInput(describeIssues("verify options", parsed.error));
  const { anchor = null, maxProblems = 100 } = parsed.data;

  const problems: TamperProblem[] = [];
  const report = (p: TamperProblem) => {
    if (problems.length < maxProblems) problems.push(p);
  };
  const full = () => problems.length >= maxProblems;

  const near = new Map<string, { seq: number; id: string }>();
  let farLookups = 0;
  const lookup: HashLookup = async (hash) => {
    const found = near.get(hash);
    if (found !== undefined || farLookups >= MAX_FAR_LOOKUPS) return found ?? null;
    farLookups += 1;
    return (await db.selectFrom("audit_events").select(["seq", "id"]).where("hash", "=", hash).limit(1).executeTakeFirst()) ?? null;
  };
  const walker = new ChainWalker(lookup, report, anchor);
  const links = new Map<string, StoredLink>();

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
      checkColumns(row, body, ids.map((id) => links.get(id)?.num), index.get(row.seq) ?? [], report);
      const missing = ids.find((id) => !links.has(id));
      await walker.push({
        seq: row.seq,
        id: row.id,
        prevHash: row.prev_hash,
        hash: row.hash,
        recomputed: missing === undefined ? chainHash(row.prev_hash, row.body, ids.map((id) => links.get(id)?.text ?? "")) : null,
        ...(missing === undefined ? {} : { unreadable: `its lineage link ${missing} is missing from the log` }),
      });
      events += 1;
      if (full()) break;
    }
    previous = page;
    page = next;
  }
  const complete = !full();
  if (complete) walker.finish();
  return { ok: problems.length === 0, events, head: walker.head, problems, complete };
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

/** The query columns and lineage index of one event must say what its body says. `lineage` holds its links' keys (undefined when missing). */
function checkColumns(row: EventsTable, body: unknown, lineage: readonly (number | undefined)[], indexed: readonly number[], report: (p: TamperProblem) => void): void {
  const where = `event ${row.id} (seq ${row.seq})`;
  const problem = (message: string) => {
    report({ kind: "index", seq: row.seq, eventId: row.id, message });
  };
  const derived = columnsOf(body);
  if (derived === null) {
    problem(`${where}: its body is not an audit event`);
    return;
  }
  for (const column of DERIVED_COLUMNS) {
    if (row[column] !== derived[column]) {
      problem(`${where}: column ${column} holds ${JSON.stringify(row[column])}, but the event says ${JSON.stringify(derived[column])}; queries on it would mislead`);
    }
  }
  // A link missing from the log is reported by the walker, as an event that cannot be rebuilt.
  if (lineage.includes(undefined)) return;
  if (indexed.length !== lineage.length || lineage.some((num, i) => indexed[i] !== num)) {
    problem(`${where}: the lineage index lists links [${indexed.join(", ")}], but the event's lineage is links [${lineage.join(", ")}]; descendant queries would mislead`);
  }
}
