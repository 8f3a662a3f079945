import { sql, type Expression, type ExpressionBuilder, type Kysely, type SqlBool } from "kysely";
import { z } from "zod";
import { InvalidInput, type Action } from "../kernel/index.js";
import { defined, describeIssues } from "../kernel/internal.js";
import type { StoredLink } from "./append-plan.js";
import { decodeEvent, lineageIdsOf, PHASE, type LoggedEvent } from "./encoding.js";
import type { AuditDb } from "./schema.js";

/**
 * What to look for in the log. Every filter given must match (AND); an empty
 * query lists the log in order. Results come in chain order (`seq`), `limit`
 * at a time; pass the last `seq` you got as `after` for the next page.
 */
export interface AuditQuery {
  /** Events whose root capability was minted for this principal ("everything Alice's bot did"). */
  readonly principal?: string;
  /** Events under the root minted for this request id. */
  readonly requestId?: string;
  /** Events made with this capability or any capability derived from it: the id appears anywhere in the event's lineage. */
  readonly descendantsOf?: string;
  /** Events made with exactly the capability of this content hash ("did this capability ever do X?"). */
  readonly capabilityHash?: string;
  readonly tool?: string;
  readonly action?: Action;
  /**
   * Events whose resource starts with this string: a path for fs, origin and
   * path for http (`https://api.example.com/v1/`), `db:<model>`, or the
   * program for exec. It is a plain string prefix: end a directory with `/`.
   */
  readonly resourcePrefix?: string;
  /**
   * `"denied"`: events denied before acting, and events denied while acting
   * (after their intent was recorded: a real path, an address). `"allowed"`:
   * events allowed when decided.
   */
  readonly decision?: "allowed" | "denied";
  /** Events that began at or after this time (milliseconds since the epoch, or a Date). */
  readonly since?: number | Date;
  /** Events that began before this time. */
  readonly until?: number | Date;
  /** Events acting for this tenant: the request's tenant, else the root's only tenant. */
  readonly tenant?: string;
  /** Events under the caretaker link labelled with this session. */
  readonly sessionId?: string;
  /** Events under the caretaker link labelled with this task. */
  readonly taskId?: string;
  /** How many events to return, 1 to 10,000 (default 100). */
  readonly limit?: number;
  /** Oldest first (`"asc"`, default) or newest first. */
  readonly order?: "asc" | "desc";
  /** Continue after the event with this `seq`, in the chosen order. */
  readonly after?: number;
}

/**
 * One event as the log holds it: where it is (the entry that matched: the
 * event itself, or its intent; for a denial met while acting, its outcome),
 * and its (redacted) content. An event whose outcome is not in the log has
 * `outcome: null` and `outcomeSeq: null`: it was in flight, or its process
 * stopped between acting and recording how it ended.
 */
export interface AuditRecord {
  readonly seq: number;
  readonly hash: string;
  readonly prevHash: string;
  /** The entry holding its outcome, when that is a separate one (an intent's); the same as `seq` for a whole event. */
  readonly outcomeSeq: number | null;
  readonly event: LoggedEvent;
}

const ACTIONS: Readonly<Record<Action, true>> = {
  "tool.call": true,
  "fs.read": true,
  "fs.write": true,
  "fs.list": true,
  "fs.delete": true,
  "http.request": true,
  "db.read": true,
  "db.create": true,
  "db.update": true,
  "db.delete": true,
  exec: true,
  revoke: true,
  "audit.read": true,
};

/** The actions a query can name. */
export const AUDIT_ACTIONS = Object.freeze(Object.keys(ACTIONS) as Action[]);

/** The largest page a query returns. */
export const MAX_LIMIT = 10_000;

const text = z.string().min(1).max(4096);
const time = z.union([z.number().int().nonnegative(), z.date()]);
const seq = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

const querySchema = z.strictObject({
  principal: text.optional(),
  requestId: text.optional(),
  descendantsOf: text.optional(),
  capabilityHash: z.string().regex(/^[0-9a-f]{64}$/, "must be a capability's hex SHA-256 (64 lowercase hex digits)").optional(),
  tool: text.optional(),
  action: z.enum(AUDIT_ACTIONS as [Action, ...Action[]]).optional(),
  resourcePrefix: text.optional(),
  decision: z.enum(["allowed", "denied"]).optional(),
  since: time.optional(),
  until: time.optional(),
  tenant: text.optional(),
  sessionId: text.optional(),
  taskId: text.optional(),
  limit: z.number().int().min(1).max(MAX_LIMIT).optional(),
  order: z.enum(["asc", "desc"]).optional(),
  after: seq.optional(),
});

/** A validated query: times as milliseconds, defaults filled in. */
export type ParsedQuery = Omit<z.infer<typeof querySchema>, "since" | "until" | "limit" | "order"> & {
  readonly since?: number;
  readonly until?: number;
  readonly limit: number;
  readonly order: "asc" | "desc";
};

/** Validates a query; throws InvalidInput naming the bad filter. */
export function parseQuery(query: unknown = {}): ParsedQuery {
  if (typeof query !== "object" || query === null || Array.isArray(query)) throw new InvalidInput("an audit query must be an object of filters");
  // Own properties only: a key inherited from a polluted Object.prototype is not a filter.
  const own: Record<string, unknown> = {};
  for (const key of Object.keys(query)) own[key] = (query as Record<string, unknown>)[key];
  const parsed = querySchema.safeParse(own);
  if (!parsed.success) throw new InvalidInput(describeIssues("audit query", parsed.error));
  const { since, until, limit = 100, order = "asc", ...filters } = parsed.data;
  const ms = (t: number | Date | undefined) => (t instanceof Date ? t.getTime() : t);
  const [from, to] = [ms(since), ms(until)];
  if (Number.isNaN(from) || Number.isNaN(to)) throw new InvalidInput("invalid audit query: since and until must be valid dates");
  if (from !== undefined && to !== undefined && from >= to) {
    throw new InvalidInput(`invalid audit query: since (${new Date(from).toISOString()}) must be before until (${new Date(to).toISOString()})`);
  }
  return { ...filters, ...defined({ since: from, until: to }), limit, order };
}

/**
 * The least string greater than every string that starts with `prefix`, in
 * code point order (which is how SQLite's BINARY and Postgres' "C" collation
 * compare UTF-8), or null when there is none. `resource >= prefix AND
 * resource < successor` is then an index range.
 */
export function prefixSuccessor(prefix: string): string | null {
  const points = Array.from(prefix, (c) => c.codePointAt(0) ?? 0);
  while (points.length > 0) {
    let last = (points.pop() ?? 0) + 1;
    if (last === 0xd800) last = 0xe000;
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last);
  }
  return null;
}

/** The stored rows that match, in the query's order and page. Parameterized SQL only. */
export async function selectRows(db: Kysely<AuditDb>, q: ParsedQuery): Promise<{ seq: number; id: string; phase: number; body: string; prev_hash: string; hash: string }[]> {
  if (q.descendantsOf === undefined) return buildSelect(db, q, null).execute();
  const link = await db.selectFrom("audit_links").select("num").where("id", "=", q.descendantsOf).executeTakeFirst();
  return link === undefined ? [] : buildSelect(db, q, link.num).execute();
}

/** The events table as the queries name it. */
type Events = ExpressionBuilder<AuditDb & { e: AuditDb["audit_events"] }, "e">;

/** The query's filters as conditions on `e` (but not `descendantsOf`, `after` and the page): each is a column comparison an index serves. */
function filterConditions(eb: Events, q: ParsedQuery): Expression<SqlBool>[] {
  // Each event matches once: by its intent or whole entry, or, for denials, by the entry holding the final decision (a whole event, or an outcome).
  const c: Expression<SqlBool>[] = [q.decision === "denied" ? eb("e.phase", "<>", sql.lit(PHASE.intent)) : eb("e.phase", "<>", sql.lit(PHASE.outcome))];
  if (q.principal !== undefined) c.push(eb("e.principal", "=", q.principal));
  if (q.requestId !== undefined) c.push(eb("e.request_id", "=", q.requestId));
  if (q.capabilityHash !== undefined) c.push(eb("e.capability_hash", "=", q.capabilityHash));
  if (q.tool !== undefined) c.push(eb("e.tool", "=", q.tool));
  if (q.action !== undefined) c.push(eb("e.action", "=", q.action));
  if (q.tenant !== undefined) c.push(eb("e.tenant", "=", q.tenant));
  if (q.sessionId !== undefined) c.push(eb("e.session_id", "=", q.sessionId));
  if (q.taskId !== undefined) c.push(eb("e.task_id", "=", q.taskId));
  if (q.since !== undefined) c.push(eb("e.at", ">=", q.since));
  if (q.until !== undefined) c.push(eb("e.at", "<", q.until));
  // A literal, not a parameter, so the planner can use the partial indexes on denied events.
  if (q.decision !== undefined) c.push(eb("e.allowed", "=", sql.lit(q.decision === "allowed" ? 1 : 0)));
  if (q.resourcePrefix !== undefined) {
    const upper = prefixSuccessor(q.resourcePrefix);
    c.push(eb("e.resource", ">=", q.resourcePrefix));
    if (upper !== null) c.push(eb("e.resource", "<", upper));
  }
  return c;
}

/**
 * The SELECT for a query; `linkNum` is the lineage key of `descendantsOf`.
 * Every filter is a column comparison an index serves (test/audit checks the
 * plans).
 */
export function buildSelect(db: Kysely<AuditDb>, q: ParsedQuery, linkNum: number | null) {
  const cmp = q.order === "asc" ? ">" : "<";
  let qb = db
    .selectFrom("audit_events as e")
    .select(["e.seq", "e.id", "e.phase", "e.body", "e.prev_hash", "e.hash"])
    .where((eb) => eb.and(filterConditions(eb, q)));
  const { after } = q;
  if (linkNum !== null) {
    // Driven by the lineage index, whose key order is (link, seq): the page is read in order, never sorted.
    qb = qb.$if(true, (b) =>
      b
        .innerJoin("audit_event_links as l", "l.event_seq", "e.seq")
        .where("l.link_num", "=", linkNum)
        .$if(after !== undefined, (c) => c.where("l.event_seq", cmp, after ?? 0))
        .orderBy("l.event_seq", q.order),
    );
  } else {
    qb = qb.$if(after !== undefined, (b) => b.where("e.seq", cmp, after ?? 0)).orderBy("e.seq", q.order);
  }
  return qb.limit(q.limit);
}

const IN_CHUNK = 500;

/** These links as the log holds them, by id; links absent from the log are absent from the map. */
export async function loadLinks(db: Kysely<AuditDb>, ids: Iterable<string>, into = new Map<string, StoredLink>()): Promise<Map<string, StoredLink>> {
  const wanted = [...new Set(ids)].filter((id) => !into.has(id));
  for (let i = 0; i < wanted.length; i += IN_CHUNK) {
    const rows = await db.selectFrom("audit_links").select(["num", "id", "summary"]).where("id", "in", wanted.slice(i, i + IN_CHUNK)).execute();
    for (const row of rows) into.set(row.id, { num: row.num, text: row.summary });
  }
  return into;
}

/** Runs a query and rebuilds each event with its full lineage and its outcome. */
export async function runQuery(db: Kysely<AuditDb>, query: unknown): Promise<AuditRecord[]> {
  const rows = await selectRows(db, parseQuery(query));
  // An intent's outcome, an outcome's intent: the other entry of each two-entry event.
  const otherPhase = (phase: number) => (phase === PHASE.intent ? PHASE.outcome : PHASE.intent);
  const wanted = rows.filter((r) => r.phase !== PHASE.event);
  const others = new Map<string, { seq: number; body: string; prev_hash: string; hash: string }>();
  for (let i = 0; i < wanted.length; i += IN_CHUNK) {
    const chunk = wanted.slice(i, i + IN_CHUNK);
    const found = await db
      .selectFrom("audit_events")
      .select(["seq", "id", "phase", "body", "prev_hash", "hash"])
      .where((eb) => eb.or(chunk.map((r) => eb.and([eb("id", "=", r.id), eb("phase", "=", otherPhase(r.phase))]))))
      .execute();
    for (const f of found) others.set(`${f.id}/${String(f.phase)}`, f);
  }
  const entries = rows.map((r) => {
    const other = r.phase === PHASE.event ? undefined : others.get(`${r.id}/${String(otherPhase(r.phase))}`);
    const [intent, outcome] = r.phase === PHASE.outcome ? [other, r] : [r, r.phase === PHASE.event ? r : other];
    return { row: r, intent, outcome };
  });
  const bodies = entries.map((e) => (e.intent === undefined ? null : (JSON.parse(e.intent.body) as unknown)));
  const links = await loadLinks(db, bodies.flatMap(lineageIdsOf));
  return entries.flatMap(({ row, intent, outcome }, i) => {
    // An outcome whose intent is gone is for verify to report; a query has no event to show for it.
    if (intent === undefined) return [];
    const outcomeBody = outcome === undefined || outcome === intent ? null : (JSON.parse(outcome.body) as unknown);
    return [{ seq: row.seq, hash: row.hash, prevHash: row.prev_hash, outcomeSeq: outcome?.seq ?? null, event: decodeEvent(bodies[i], links, outcomeBody) }];
  });
}

/** What a histogram groups events by: the principal of their root, their tool, or their tenant (as `tenant` filters it). */
export type HistogramKey = "principal" | "tool" | "tenant";

/** How to count: by which key, in how many equal spans of time. */
export interface HistogramOptions {
  readonly by: HistogramKey;
  /** The spans [since, until) is cut into; without since or until, the span the matching events cover. At most MAX_HISTOGRAM_BUCKETS. */
  readonly buckets: number;
}

/** One key's events in one span: how many were allowed, how many denied (at the decision, or while acting). */
export interface HistogramRow {
  /** Null for events without one (a call with no tool, an event of no single tenant). */
  readonly key: string | null;
  readonly bucket: number;
  readonly allowed: number;
  readonly denied: number;
}

/** The events a query matches, counted by key and span of time. */
export interface Histogram {
  /** The first span's start, each span's width (ms) and their number. */
  readonly from: number;
  readonly bucketMs: number;
  readonly buckets: number;
  /** Rows only for keys and spans with events. */
  readonly rows: readonly HistogramRow[];
}

export const MAX_HISTOGRAM_BUCKETS = 1000;

const HISTOGRAM_COLUMNS = { principal: "e.principal", tool: "e.tool", tenant: "e.tenant" } as const;
const histogramSchema = z.strictObject({ by: z.enum(["principal", "tool", "tenant"]), buckets: z.number().int().min(1).max(MAX_HISTOGRAM_BUCKETS) });

/**
 * Counts the events `query` matches (its filters; it takes no page) in one
 * aggregate query, each by its final decision: denied when it was refused,
 * or when a denial was met while acting. Throws InvalidInput for a bad
 * query or options.
 */
export async function runHistogram(db: Kysely<AuditDb>, query: unknown, options: HistogramOptions): Promise<Histogram> {
  const parsedOptions = histogramSchema.safeParse(options);
  if (!parsedOptions.success) throw new InvalidInput(describeIssues("histogram options", parsedOptions.error));
  const { by, buckets } = parsedOptions.data;
  const q = parseQuery(query);
  const paged = ["limit", "order", "after"].filter((k) => Object.hasOwn(query as object, k));
  if (paged.length > 0) throw new InvalidInput(`a histogram counts every matching event: leave out ${paged.join(", ")}`);
  let linkNum: number | null = null;
  if (q.descendantsOf !== undefined) {
    const link = await db.selectFrom("audit_links").select("num").where("id", "=", q.descendantsOf).executeTakeFirst();
    if (link === undefined) return { from: q.since ?? 0, bucketMs: 1, buckets, rows: [] };
    linkNum = link.num;
  }
  const matching = () => {
    const qb = db.selectFrom("audit_events as e").where((eb) => eb.and(filterConditions(eb, q)));
    return linkNum === null ? qb : qb.where("e.seq", "in", db.selectFrom("audit_event_links").select("event_seq").where("link_num", "=", linkNum));
  };
  let from = q.since;
  let to = q.until;
  if (from === undefined || to === undefined) {
    const span = await matching()
      .select((eb) => [eb.fn.min<number | null>("e.at").as("lo"), eb.fn.max<number | null>("e.at").as("hi")])
      .executeTakeFirst();
    // Both are null when nothing matches.
    const [lo, hi] = [span?.lo ?? null, span?.hi ?? null];
    if (lo === null || hi === null) return { from: from ?? 0, bucketMs: 1, buckets, rows: [] };
    from ??= lo;
    to ??= hi + 1;
  }
  const bucketMs = Math.max(1, Math.ceil((to - from) / buckets));
  // An outcome with allowed = 0 met a denial while acting: its event counts as denied. Such outcomes are few (a partial index holds the denied).
  const deniedWhileActing = db.selectFrom("audit_events").select("id").where("phase", "=", sql.lit(PHASE.outcome)).where("allowed", "=", sql.lit(0));
  const rows = await matching()
    .select((eb) => [
      eb.ref(HISTOGRAM_COLUMNS[by]).as("key"),
      // Both numbers are whole and computed here: literals, so the division is an integer one in both engines.
      sql<number>`(${eb.ref("e.at")} - ${sql.lit(from)}) / ${sql.lit(bucketMs)}`.as("bucket"),
      eb.fn.countAll<number>().as("n"),
      eb.fn
        .sum<number>(
          eb
            .case()
            .when(eb.and([eb("e.allowed", "=", sql.lit(1)), eb("e.id", "not in", deniedWhileActing)]))
            .then(sql.lit(1))
            .else(sql.lit(0))
            .end(),
        )
        .as("allowed"),
    ])
    .groupBy(["key", "bucket"])
    .execute();
  return {
    from,
    bucketMs,
    buckets,
    // Both engines give whole numbers here (Postgres's bigints are read as numbers on the store's pool).
    rows: rows.map((r) => ({ key: r.key, bucket: Math.min(buckets - 1, Math.max(0, r.bucket)), allowed: r.allowed, denied: r.n - r.allowed })),
  };
}
