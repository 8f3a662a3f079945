import { requestTarget } from "../kernel/index.js";
import type { LoggedEvent } from "./encoding.js";
import type { AuditRecord } from "./query.js";
import type { PruneReport } from "./retention.js";
import type { VerifyReport } from "./verify.js";

/*
 * How records look to people (a table) and to machines (JSON lines). Both
 * show only what the log stores, which is already redacted.
 */

/**
 * One JSON object per line, `{ seq, hash, prevHash, outcomeSeq, event }`,
 * each line ending in a newline; characters JSON leaves raw but a terminal
 * acts on (DEL, C1 controls, bidirectional marks) are written as `\u`
 * escapes.
 */
export function formatJsonLines(records: readonly AuditRecord[]): string {
  return records.map((r) => `${printable(JSON.stringify(r))}\n`).join("");
}

const MAX_CELL = 48;

// Control characters, and the marks that reorder text on screen, in any string an agent may have chosen.
const UNPRINTABLE = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/**
 * `text` safe for a terminal: every control character (escape sequences
 * included) and every bidirectional mark shown as a `\u` escape, so an
 * agent-chosen path or argument can neither drive the operator's terminal
 * nor disguise itself.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`);
}

function cell(text: string): string {
  const shown = printable(text);
  return shown.length > MAX_CELL ? `${shown.slice(0, MAX_CELL - 1)}…` : shown;
}

function decision(event: LoggedEvent): string {
  const d = event.decision;
  if (!d.allowed) return `DENIED ${d.code} at link ${d.link}`;
  const o = event.outcome;
  // A revocation says what it reached in the revoking process, and why.
  if (event.kind === "revocation" && o?.ok === true && o.reached !== undefined) {
    const { capabilities, tokens, sessions } = o.reached;
    return `revoked (${capabilities} cap, ${tokens} token, ${sessions} session): ${o.reason ?? ""}`;
  }
  return "allowed";
}

function outcome(event: LoggedEvent): string {
  const o = event.outcome;
  if (o === null) return "NO OUTCOME";
  return o.ok ? "ok" : o.errorCode;
}

/**
 * An aligned text table, one row per event: sequence number, time (UTC),
 * principal, tool, action, target, decision, outcome (NO OUTCOME for an
 * intent whose outcome is not in the log), and the capability used (short
 * id, with its depth below the root).
 */
export function formatTable(records: readonly AuditRecord[]): string {
  if (records.length === 0) return "no matching events\n";
  const header = ["seq", "time (UTC)", "principal", "tool", "action", "target", "decision", "outcome", "capability"];
  const rows = records.map(({ seq, event }) => [
    String(seq),
    new Date(event.at).toISOString().replace("T", " ").slice(0, 19),
    event.subject.mint.principal,
    event.tool ?? "-",
    event.request.action,
    requestTarget(event.request),
    decision(event),
    outcome(event),
    `${event.subject.capabilityId.slice(0, 8)} (depth ${event.subject.lineage.length - 1})`,
  ].map(cell));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => `${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd()}\n`;
  return [line(header), line(widths.map((n) => "-".repeat(n))), ...rows.map(line)].join("");
}

/** The verify report in words: one line per problem, the tree and the checkpoints it was checked against, and intents without an outcome. */
export function formatVerifyReport(report: VerifyReport): string {
  const lines = report.problems.map((p) => `  ${p.kind.padEnd(11)} seq ${String(p.seq).padStart(6)}  ${printable(p.message)}`);
  const verdict = report.ok
    ? `ok: ${report.events} entries verified`
    : `TAMPERED: ${report.problems.length} problem(s) in ${report.events} entries checked${report.complete ? "" : " (stopped early)"}`;
  const tree = `tree: ${report.tree.size} entries, root ${report.tree.root}`;
  const c = report.checkpoints;
  const against =
    c.checked === 0
      ? "checkpoints: none given, so a rewrite with recomputed hashes, a truncated end or a replaced database would go unseen (pass --checkpoints and --public-key)"
      : `checkpoints: ${c.checked} signed checkpoint(s) checked, the latest covering ${String(c.latest)} entries`;
  const p = report.pruned;
  const pruned =
    p === null
      ? []
      : [
          `pruned by retention: entries 1 to ${String(p.upTo)} (older than ${new Date(p.before).toISOString()}), on ${new Date(p.at).toISOString()}; ${p.signed ? "the signed retention checkpoint" : "the log's own record of it (unsigned: pass --checkpoints and --public-key)"} anchors what remains`,
        ];
  const open =
    report.openIntentCount === 0
      ? []
      : [
          `intents without an outcome (in flight, or their process stopped between acting and recording the outcome): ${report.openIntentCount}`,
          ...report.openIntents.map((o) => `  seq ${String(o.seq).padStart(6)}  event ${o.id}`),
        ];
  return [verdict, ...lines, tree, against, ...pruned, ...open].join("\n") + "\n";
}

/** What a prune did, in words. */
export function formatPruneReport(report: PruneReport): string {
  const cutoff = new Date(report.before).toISOString();
  const done =
    report.pruned === 0
      ? `nothing to prune: no entry older than ${cutoff} can go${report.upTo > 0 ? ` (entries 1 to ${String(report.upTo)} were pruned before)` : ""}`
      : `pruned ${String(report.pruned)} entries (${String(report.from)} to ${String(report.upTo)}) older than ${cutoff}; the signed retention checkpoint of size ${String(report.upTo)} records it`;
  const held = report.heldBack === null ? [] : [`kept from entry ${String(report.heldBack.seq)}: ${printable(report.heldBack.message)}`];
  return [done, ...held].join("\n") + "\n";
}

/** The line a table of query results ends with on a pruned log. */
export function prunedNote(pruned: { readonly upTo: number; readonly before: number; readonly at: number }): string {
  return `(entries 1 to ${String(pruned.upTo)}, older than ${new Date(pruned.before).toISOString()}, were pruned by retention on ${new Date(pruned.at).toISOString()})\n`;
}

/** One group of shadow disagreements: a tool and the rule its shadow grant would have denied by. */
export interface ShadowGroup {
  readonly tool: string;
  readonly rule: string;
  readonly count: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** What the shadow grant found, for the first event of the group. */
  readonly example: string;
}

/**
 * The allowed events a grant attached in shadow would have denied, grouped
 * by tool (or action, for a resource event without one) and by the rule that
 * would have denied, most frequent first.
 */
export function shadowGroups(records: readonly AuditRecord[]): ShadowGroup[] {
  const groups = new Map<string, { tool: string; rule: string; count: number; firstSeq: number; lastSeq: number; example: string }>();
  for (const { seq, event } of records) {
    const d = event.decision;
    if (!d.allowed || d.shadow === undefined) continue;
    const tool = event.tool ?? event.request.action;
    const key = JSON.stringify([tool, d.shadow.rule]);
    const g = groups.get(key);
    if (g === undefined) groups.set(key, { tool, rule: d.shadow.rule, count: 1, firstSeq: seq, lastSeq: seq, example: d.shadow.because });
    else {
      g.count += 1;
      g.firstSeq = Math.min(g.firstSeq, seq);
      g.lastSeq = Math.max(g.lastSeq, seq);
    }
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || (a.tool < b.tool ? -1 : a.tool > b.tool ? 1 : 0));
}

/** Shadow groups as an aligned text table. */
export function formatShadowGroups(groups: readonly ShadowGroup[]): string {
  if (groups.length === 0) return "no shadow disagreements\n";
  const header = ["tool", "rule", "events", "first seq", "last seq", "would deny because"];
  const rows = groups.map((g) => [g.tool, g.rule, String(g.count), String(g.firstSeq), String(g.lastSeq), g.example].map(cell));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) => `${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd()}\n`;
  return [line(header), ...rows.map(line)].join("");
}
