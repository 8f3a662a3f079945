import { PHASE, type EventColumns } from "./encoding.js";

/*
 * The log's three tables, the same in SQLite and Postgres:
 *
 * - audit_events: one row per entry in log order (`seq`): a whole event, an
 *   intent recorded before acting, or the outcome completing an intent
 *   (`phase` 0, 1, 2); its indexed columns, its canonical body (lineage
 *   written as link ids), its Merkle leaf hash, and the previous and own
 *   chain hashes.
 * - audit_links: each lineage link's canonical encoding, stored once however
 *   many events it took part in (a root is shared by every call under it),
 *   under a small integer key.
 * - audit_event_links: the lineage as an index, one row per (link key,
 *   event), so "everything done under authority derived from C" is a key
 *   lookup, and the index stays a few bytes per link.
 * - audit_tree: the hash of every complete, aligned subtree of the Merkle
 *   tree above the leaves (see merkle.ts), for roots and proofs of any size.
 *   Once entries are pruned by retention, only the subtrees that make up the
 *   tree of the pruned entries are kept of those below the cut (with the
 *   last pruned leaf's hash at level 0 when it stands alone).
 * - audit_retention: one row per prune by retention: the last entry pruned
 *   and the signed checkpoint recording it (see retention.ts).
 */

/** The Postgres schema the log's tables live in unless told otherwise. */
export const DEFAULT_POSTGRES_SCHEMA = "agentcap_audit";

/** A row of audit_events. */
export interface EventsTable extends EventColumns {
  readonly seq: number;
  readonly body: string;
  /** The Merkle leaf hash of the entry (hex). */
  readonly leaf: string;
  readonly prev_hash: string;
  readonly hash: string;
}

/** A row of audit_tree: the subtree of 2^level leaves starting at leaf idx × 2^level (level ≥ 1). */
export interface TreeTable {
  readonly level: number;
  readonly idx: number;
  readonly hash: string;
}

/** A row of audit_links: `num` is the link's short key in the lineage index. */
export interface LinksTable {
  readonly num: number;
  readonly id: string;
  readonly summary: string;
}

/** A row of audit_event_links: link `link_num` is at `position` (0 = root) of event `event_seq`'s lineage. */
export interface EventLinksTable {
  readonly link_num: number;
  readonly event_seq: number;
  readonly position: number;
}

/** A row of audit_retention: entries 1 to `up_to` were pruned at `at`, as the signed retention checkpoint `note` records. */
export interface RetentionTable {
  readonly up_to: number;
  readonly note: string;
  readonly at: number;
}

/** The tables as Kysely sees them. */
export interface AuditDb {
  audit_events: EventsTable;
  audit_links: LinksTable;
  audit_event_links: EventLinksTable;
  audit_tree: TreeTable;
  audit_retention: RetentionTable;
}

/** The tables that only ever grow: triggers refuse updates and deletes on each (a prune by retention alone deletes, see retention.ts). */
export const AUDIT_TABLES = ["audit_events", "audit_links", "audit_event_links", "audit_tree", "audit_retention"] as const;

/** The tables a prune by retention deletes from. */
export const PRUNED_TABLES = ["audit_events", "audit_links", "audit_event_links", "audit_tree"] as const;

/** The columns of audit_events in insertion order. */
export const EVENT_COLUMNS = [
  "seq",
  "id",
  "phase",
  "at",
  "tool",
  "action",
  "resource",
  "allowed",
  "principal",
  "request_id",
  "tenant",
  "capability_hash",
  "session_id",
  "task_id",
  "body",
  "leaf",
  "prev_hash",
  "hash",
] as const satisfies readonly (keyof EventsTable)[];

/** The derived columns the verifier compares with the body. */
export const DERIVED_COLUMNS = EVENT_COLUMNS.filter(
  (c): c is Exclude<(typeof EVENT_COLUMNS)[number], "seq" | "body" | "leaf" | "prev_hash" | "hash"> =>
    c !== "seq" && c !== "body" && c !== "leaf" && c !== "prev_hash" && c !== "hash",
);

/** The entries a filter index holds: intents and whole events, never outcomes. */
const DECIDED = `phase <> ${String(PHASE.outcome)}`;

/**
 * Indexes, one per query filter, each ending with `seq` so that the matching
 * events come out in chain order and a page stops reading after `limit`
 * rows, however many match. A time range alone uses `at`; combined with
 * another filter, the planner picks whichever index narrows more. Denied
 * events get two small partial indexes, since they are few and looked at
 * often: in chain order ("the latest denials") and by time.
 *
 * A query matches an event by its intent or whole entry (`phase <> 2`, see
 * query.ts), and a denial by its outcome through the denied indexes, so the
 * filter indexes leave outcomes out: an outcome, half the entries of a
 * gateway's log, then updates the table and its id index only. `at` keeps
 * every entry (an export starts at the first entry of any kind at a time),
 * and so does `id` (an entry is found by id and phase). A log whose indexes
 * were made with other conditions has them rebuilt when it is opened for
 * writing (see `staleIndexes`).
 */
export const INDEXES: readonly { readonly name: string; readonly columns: string; readonly unique?: true; readonly where?: string }[] = [
  { name: "audit_events_id", columns: "id, phase", unique: true },
  { name: "audit_events_at", columns: "at" },
  { name: "audit_events_principal", columns: "principal, seq", where: DECIDED },
  { name: "audit_events_request_id", columns: "request_id, seq", where: DECIDED },
  { name: "audit_events_capability_hash", columns: "capability_hash, seq", where: DECIDED },
  { name: "audit_events_tool", columns: "tool, seq", where: DECIDED },
  { name: "audit_events_action", columns: "action, seq", where: DECIDED },
  { name: "audit_events_resource", columns: "resource", where: DECIDED },
  { name: "audit_events_tenant", columns: "tenant, seq", where: DECIDED },
  { name: "audit_events_session_id", columns: "session_id, seq", where: DECIDED },
  { name: "audit_events_task_id", columns: "task_id, seq", where: DECIDED },
  { name: "audit_events_denied_seq", columns: "seq", where: "allowed = 0" },
  { name: "audit_events_denied_at", columns: "at", where: "allowed = 0" },
];

/**
 * The indexes of INDEXES that a log holds under another condition than this
 * version's (`existing`: each index's name and its WHERE condition as the
 * engine prints it, null for none), to be dropped and made again. Compared
 * with spaces and parentheses left out, as each engine prints an expression
 * its own way.
 */
export function staleIndexes(existing: readonly { readonly name: string; readonly where: string | null }[]): string[] {
  const bare = (where: string | null | undefined) => (where ?? "").replace(/[\s()]/g, "").toLowerCase();
  return INDEXES.filter((i) => {
    const found = existing.find((e) => e.name === i.name);
    return found !== undefined && bare(found.where) !== bare(i.where);
  }).map((i) => i.name);
}
