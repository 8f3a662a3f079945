/**
 * The explorer's views, computed from the audit log (and the revocation
 * list, when there is one): pages of the timeline, the delegation tree under
 * a capability, one capability's lineage and mint record, and the log's
 * integrity. Each takes the tenant the reader is confined to, if any, and
 * shows nothing of any other.
 */
import type { AuditQuery, AuditRecord, AuditStore, VerifyReport } from "../audit/index.js";
import { requestTarget, type Grant, type LinkConditions, type LinkSummary, type MintRecord } from "../kernel/index.js";
import type { RevocationEntry, RevocationReach, TargetKind } from "../token/index.js";
import type { ReadScope } from "./access.js";

/*
 * The API's answers, as JSON: the server builds them and the page (src/web/ui)
 * reads them with these same types.
 */

/** GET api/session: who the token reads as, and whether this explorer can revoke. */
export interface SessionView {
  readonly principal: string;
  readonly scope: ReadScope;
  readonly canRevoke: boolean;
}

/** GET api/events: a page of the timeline, newest or oldest first; `next` is the `after` of the next page, null at the end. */
export interface TimelinePage {
  readonly events: readonly AuditRecord[];
  readonly next: number | null;
}

/** GET api/integrity: the log's verification and its latest signed checkpoint. */
export type IntegrityView = Omit<VerifyReport, "head"> & { readonly latestCheckpoint: { readonly size: number; readonly note: string } | null };

/** POST api/revoke: what was revoked and what it reached. */
export interface RevocationView {
  readonly revoked: true;
  readonly kind: TargetKind;
  readonly id: string;
  readonly reason: string;
  readonly reached: RevocationReach;
}

/** Whether a capability can still act: live, expired, or revoked (itself, an ancestor, its session, principal, tenant, role or key). */
export type CapabilityStatus = "live" | "expired" | "revoked";

/** One call in a view: enough to list it and to find it in the timeline. */
export interface CallSummary {
  readonly seq: number;
  readonly id: string;
  readonly at: number;
  readonly tool: string | null;
  readonly action: string;
  readonly target: string;
  readonly allowed: boolean;
  /** Why it was denied, or how it failed; null when it succeeded. */
  readonly reason: string | null;
  /** Whether its outcome is in the log: it may still be in flight, or its process stopped. */
  readonly open: boolean;
}

/** One capability of a delegation tree. */
export interface TreeNode {
  readonly id: string;
  readonly parent: string | null;
  readonly depth: number;
  readonly hash: string;
  readonly grant: Grant | null;
  readonly conditions: LinkConditions;
  readonly labels: Readonly<Record<string, string>>;
  /** The grant and conditions in a few words. */
  readonly summary: string;
  readonly status: CapabilityStatus;
  readonly statusReason: string | null;
  readonly calls: { readonly allowed: number; readonly denied: number };
  /** The latest calls made with exactly this capability (at most RECENT_CALLS). */
  readonly recent: readonly CallSummary[];
}

/** The capabilities under one, as far as the log has seen them (a link that never acted is not in the log). */
export interface DelegationTree {
  readonly root: string;
  readonly mint: MintRecord;
  /** Depth first, each node after its parent. */
  readonly nodes: readonly TreeNode[];
  readonly events: number;
  /** True when the tree holds more events than one view reads (MAX_TREE_EVENTS); the counts are of those read. */
  readonly truncated: boolean;
}

/** One capability: its lineage from the root, the mint record of its root, its status, and its latest calls. */
export interface CapabilityDetail {
  readonly id: string;
  readonly lineage: readonly (LinkSummary & { readonly summary: string })[];
  readonly mint: MintRecord;
  readonly status: CapabilityStatus;
  readonly statusReason: string | null;
  readonly recent: readonly CallSummary[];
}

export const RECENT_CALLS = 20;
export const MAX_TREE_EVENTS = 200_000;
const PAGE = 10_000;

const list = (values: readonly unknown[]) => values.map(String).join(", ");

/** A grant and a link's conditions in a few words, for people. */
export function grantSummary(grant: Grant | null, conditions: LinkConditions): string {
  const parts: string[] = [];
  if (grant !== null) {
    if (grant.tools !== undefined) parts.push(`tools: ${grant.tools.length === 0 ? "none" : list(grant.tools)}`);
    for (const r of grant.fs ?? []) parts.push(`fs ${list(r.ops)} ${r.path}${r.subtree === false ? "" : "/…"}`);
    for (const r of grant.http ?? []) parts.push(`http ${list(r.methods)} ${r.origin}${r.pathPrefix ?? "/"}`);
    for (const r of grant.db ?? []) parts.push(`db ${list(r.ops)} ${r.model}${r.scope === undefined ? "" : ` where ${JSON.stringify(r.scope)}`}`);
    for (const r of grant.exec ?? []) parts.push(`exec ${r.program}`);
    for (const r of grant.revoke ?? []) parts.push(`revoke ${r.target}${r.ids === undefined ? "" : ` ${list(r.ids)}`}`);
    if (grant.audit !== undefined) parts.push(`audit ${list(grant.audit)}`);
    if (parts.length === 0) parts.push("grants nothing");
  }
  const c: LinkConditions = { ...(grant ?? {}), ...conditions };
  if (c.expiresAt !== undefined) parts.push(`expires ${new Date(c.expiresAt).toISOString()}`);
  if (c.maxUses !== undefined) parts.push(`at most ${String(c.maxUses)} use${c.maxUses === 1 ? "" : "s"}`);
  if (c.budget?.calls !== undefined) parts.push(`budget ${String(c.budget.calls)} calls`);
  if (c.budget?.cost !== undefined) parts.push(`budget ${String(c.budget.cost)} cost`);
  if (c.tenants !== undefined) parts.push(`tenants ${list(c.tenants)}`);
  return parts.length === 0 ? "same as its parent" : parts.join(" · ");
}

/** The revocation list by kind and id, for finding what refuses a chain. */
export class RevocationIndex {
  readonly #byKind = new Map<string, Map<string, RevocationEntry>>();
  /** Links the log saw refused as revoked (a caretaker's revocation is not in the list), with why. */
  readonly #deniedLinks = new Map<string, string>();

  constructor(entries: readonly RevocationEntry[]) {
    for (const e of entries) {
      let ids = this.#byKind.get(e.kind);
      if (ids === undefined) this.#byKind.set(e.kind, (ids = new Map<string, RevocationEntry>()));
      if (!ids.has(e.id)) ids.set(e.id, e);
    }
  }

  /** Learns from a logged event: a denial for revocation names the revoked link. */
  observe(record: AuditRecord): void {
    const d = record.event.decision;
    if (!d.allowed && d.code === "ERR_REVOKED" && d.linkId !== "" && !this.#deniedLinks.has(d.linkId)) this.#deniedLinks.set(d.linkId, d.reason);
  }

  #find(kind: string, id: string): RevocationEntry | undefined {
    return this.#byKind.get(kind)?.get(id);
  }

  /** Why a chain (root first) minted as `mint` is revoked, or null. */
  revokedBecause(chain: readonly LinkSummary[], mint: MintRecord): string | null {
    for (const link of chain) {
      const e = this.#find("link", link.id);
      if (e !== undefined) return `capability ${link.id} revoked: ${e.reason}`;
      const session = link.labels.session;
      const s = session === undefined ? undefined : this.#find("session", session);
      if (s !== undefined) return `session ${s.id} revoked: ${s.reason}`;
    }
    // Who was revoked refuses what was minted before the revocation, reinstated or not.
    const before = (e: RevocationEntry | undefined) => e !== undefined && mint.issuedAt <= e.revokedAt;
    const principal = this.#find("principal", mint.principal);
    if (before(principal)) return `principal ${mint.principal} revoked: ${principal?.reason ?? ""}`;
    for (const t of mint.tenants) {
      const e = this.#find("tenant", t);
      if (before(e)) return `tenant ${t} revoked: ${e?.reason ?? ""}`;
    }
    for (const r of mint.roles) {
      const e = this.#find("role", r);
      if (before(e)) return `role ${r} revoked: ${e?.reason ?? ""}`;
    }
    const key = /^key:(\d+):/.exec(mint.mintId)?.[1];
    const k = key === undefined ? undefined : this.#find("key", key);
    if (k !== undefined) return `root key ${k.id} revoked: ${k.reason}`;
    // Last, what the log saw refused: a caretaker's revocation is in no list.
    for (const link of chain) {
      const seen = this.#deniedLinks.get(link.id);
      if (seen !== undefined) return `capability ${link.id} revoked: ${seen}`;
    }
    return null;
  }
}

/** The status of a chain (root first) now. */
export function statusOf(chain: readonly LinkSummary[], mint: MintRecord, revocations: RevocationIndex, now: number): { status: CapabilityStatus; reason: string | null } {
  const revoked = revocations.revokedBecause(chain, mint);
  if (revoked !== null) return { status: "revoked", reason: revoked };
  for (const link of chain) {
    const at = link.conditions.expiresAt ?? link.grant?.expiresAt;
    if (at !== undefined && now >= at) return { status: "expired", reason: `capability ${link.id} expired at ${new Date(at).toISOString()}` };
  }
  return { status: "live", reason: null };
}

/** A logged event as one line of a view. */
export function callSummary(r: AuditRecord): CallSummary {
  const e = r.event;
  const reason = !e.decision.allowed ? e.decision.reason : e.outcome !== null && !e.outcome.ok ? e.outcome.message : null;
  return { seq: r.seq, id: e.id, at: e.at, tool: e.tool, action: e.request.action, target: requestTarget(e.request), allowed: e.decision.allowed, reason, open: e.outcome === null };
}

/** Every event the query matches, a page at a time, up to `max`. */
async function* everyRecord(audit: AuditStore, query: AuditQuery, max: number): AsyncGenerator<AuditRecord> {
  let after: number | undefined;
  let read = 0;
  for (;;) {
    const page = await audit.query({ ...query, limit: Math.min(PAGE, max - read + 1), ...(after === undefined ? {} : { after }) });
    for (const r of page) yield r;
    read += page.length;
    const last = page.at(-1);
    if (last === undefined || page.length < PAGE || read > max) return;
    after = last.seq;
  }
}

/** The revocation list as the log tells it, for an explorer without a token store: every allowed revocation recorded. */
export async function loggedRevocations(audit: AuditStore): Promise<RevocationEntry[]> {
  const entries: RevocationEntry[] = [];
  for await (const r of everyRecord(audit, { action: "revoke", decision: "allowed", order: "desc" }, MAX_TREE_EVENTS)) {
    const req = r.event.request;
    if (req.action !== "revoke" || r.event.outcome?.ok !== true) continue;
    entries.push({ kind: req.target, id: req.id, reason: r.event.outcome.reason ?? "revoked", revokedAt: r.event.at, reinstatedAt: null, expiresAt: null });
  }
  return entries;
}

/** The delegation tree under capability `root`, from the events the reader may see; null when the log holds none. */
export async function delegationTree(audit: AuditStore, root: string, tenant: string | undefined, revocations: RevocationIndex, now: number): Promise<DelegationTree | null> {
  interface Building {
    readonly link: LinkSummary;
    readonly parent: string | null;
    readonly chain: readonly LinkSummary[];
    readonly children: string[];
    allowed: number;
    denied: number;
    recent: AuditRecord[];
  }
  const nodes = new Map<string, Building>();
  let mint: MintRecord | null = null;
  let events = 0;
  let truncated = false;
  for await (const r of everyRecord(audit, { descendantsOf: root, ...(tenant === undefined ? {} : { tenant }) }, MAX_TREE_EVENTS)) {
    if (events === MAX_TREE_EVENTS) {
      truncated = true;
      break;
    }
    events++;
    revocations.observe(r);
    const lineage = r.event.subject.lineage;
    const from = lineage.findIndex((l) => l.id === root);
    if (from < 0) continue;
    mint ??= r.event.subject.mint;
    for (let i = from; i < lineage.length; i++) {
      const link = lineage[i] as LinkSummary;
      if (nodes.has(link.id)) continue;
      const parent = i === from ? null : (lineage[i - 1] as LinkSummary).id;
      nodes.set(link.id, { link, parent, chain: lineage.slice(0, i + 1), children: [], allowed: 0, denied: 0, recent: [] });
      if (parent !== null) nodes.get(parent)?.children.push(link.id);
    }
    const own = nodes.get(r.event.subject.capabilityId);
    if (own === undefined) continue;
    if (r.event.decision.allowed) own.allowed++;
    else own.denied++;
    own.recent.push(r);
    if (own.recent.length > RECENT_CALLS) own.recent.shift();
  }
  if (mint === null) return null;
  const out: TreeNode[] = [];
  const stack: [string, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [id, depth] = stack.pop() as [string, number];
    const n = nodes.get(id);
    if (n === undefined) continue;
    const { status, reason } = statusOf(n.chain, mint, revocations, now);
    out.push({
      id,
      parent: n.parent,
      depth,
      hash: n.link.hash,
      grant: n.link.grant,
      conditions: n.link.conditions,
      labels: n.link.labels,
      summary: grantSummary(n.link.grant, n.link.conditions),
      status,
      statusReason: reason,
      calls: { allowed: n.allowed, denied: n.denied },
      recent: n.recent.map(callSummary).reverse(),
    });
    for (let i = n.children.length - 1; i >= 0; i--) stack.push([n.children[i] as string, depth + 1]);
  }
  return { root, mint, nodes: out, events, truncated };
}

/** Capability `id` as the reader may see it; null when no event it may see was made under it. */
export async function capabilityDetail(audit: AuditStore, id: string, tenant: string | undefined, revocations: RevocationIndex, now: number): Promise<CapabilityDetail | null> {
  const scope = tenant === undefined ? {} : { tenant };
  const recent = await audit.query({ descendantsOf: id, order: "desc", limit: 500, ...scope });
  const first = recent[0];
  if (first === undefined) return null;
  recent.forEach((r) => {
    revocations.observe(r);
  });
  const lineage = first.event.subject.lineage;
  const chain = lineage.slice(0, lineage.findIndex((l) => l.id === id) + 1);
  const { status, reason } = statusOf(chain, first.event.subject.mint, revocations, now);
  return {
    id,
    lineage: chain.map((l) => ({ ...l, summary: grantSummary(l.grant, l.conditions) })),
    mint: first.event.subject.mint,
    status,
    statusReason: reason,
    recent: recent.filter((r) => r.event.subject.capabilityId === id).slice(0, RECENT_CALLS).map(callSummary),
  };
}

/** What a chart groups events by. */
export const CHART_DIMENSIONS = ["principal", "tool", "tenant"] as const;
export type ChartDimension = (typeof CHART_DIMENSIONS)[number];

/** One group's calls over time: allowed and denied counts per bucket, oldest bucket first. */
export interface ChartSeries {
  /** The principal, tool or tenant; "(none)" for events without one, "(others)" for the groups past MAX_CHART_SERIES. */
  readonly key: string;
  readonly allowed: readonly number[];
  readonly denied: readonly number[];
  readonly total: number;
}

/** GET api/chart: calls and denials over time, by principal, tool or tenant, of the events the timeline's filters match. */
export interface ActivityChart {
  readonly by: ChartDimension;
  /** The first bucket's start, each bucket's width (ms) and their number. */
  readonly from: number;
  readonly bucketMs: number;
  readonly buckets: number;
  /** The largest groups first. */
  readonly series: readonly ChartSeries[];
  readonly events: number;
}

export const MAX_CHART_SERIES = 8;
export const MAX_CHART_BUCKETS = 120;

/** Every event `query` matches, counted by the log in `buckets` equal spans of [since, until) (or of the span the events cover), by `by`. */
export async function activityChart(audit: AuditStore, query: AuditQuery, by: ChartDimension, buckets: number): Promise<ActivityChart> {
  const h = await audit.histogram(query, { by, buckets });
  const groups = new Map<string, { allowed: number[]; denied: number[]; total: number }>();
  for (const row of h.rows) {
    const key = row.key ?? "(none)";
    let g = groups.get(key);
    if (g === undefined) groups.set(key, (g = { allowed: new Array<number>(buckets).fill(0), denied: new Array<number>(buckets).fill(0), total: 0 }));
    g.allowed[row.bucket] = (g.allowed[row.bucket] ?? 0) + row.allowed;
    g.denied[row.bucket] = (g.denied[row.bucket] ?? 0) + row.denied;
    g.total += row.allowed + row.denied;
  }
  const ranked = [...groups.entries()].map(([key, g]) => ({ key, ...g })).sort((a, b) => b.total - a.total || (a.key < b.key ? -1 : 1));
  const series: ChartSeries[] = ranked.slice(0, MAX_CHART_SERIES);
  const rest = ranked.slice(MAX_CHART_SERIES);
  if (rest.length > 0) {
    const sum = (pick: (s: ChartSeries) => readonly number[]) => Array.from({ length: buckets }, (_, i) => rest.reduce((n, s) => n + (pick(s)[i] ?? 0), 0));
    series.push({ key: "(others)", allowed: sum((s) => s.allowed), denied: sum((s) => s.denied), total: rest.reduce((n, s) => n + s.total, 0) });
  }
  return { by, from: h.from, bucketMs: h.bucketMs, buckets, series, events: ranked.reduce((n, g) => n + g.total, 0) };
}
