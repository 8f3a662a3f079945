import { z } from "zod";
import { AuditFailure, InvalidInput, type ApprovalRecord, type AuditCompletion, type AuditEvent, type AuditIntent, type AuditOutcome, type Denied, type Request, type ToolCode } from "../kernel/index.js";
import { checkRequest, describeIssues, isLinkSummary, snapshotPlainData, type PlainData } from "../kernel/internal.js";
import { canonical } from "./canonical.js";
import type { Redactor } from "./redaction.js";

/** The kinds of entries the log holds, as stored in the `phase` column. */
export const PHASE = { event: 0, intent: 1, outcome: 2 } as const;

/** An entry's kind: a whole event (an invocation that did not act), an intent (recorded before acting), or the outcome that completes one. */
export type Phase = keyof typeof PHASE;

/**
 * The indexed columns of one entry, named as in the tables. They are derived
 * from the stored bodies alone (an outcome's from its intent's and its own),
 * so the verifier can derive them again and catch a column edited to hide an
 * event from queries.
 */
export interface EventColumns {
  readonly id: string;
  readonly phase: (typeof PHASE)[Phase];
  readonly at: number;
  readonly tool: string | null;
  readonly action: string;
  /** fs: the path; http: origin and path; db: `db:<model>`; exec: the program; tool.call: null. */
  readonly resource: string | null;
  /** 1 when the decision allowed the request, 0 when it denied it (for an outcome: 0 when a denial was met while acting). */
  readonly allowed: 0 | 1;
  readonly principal: string;
  readonly request_id: string;
  /** The request's tenant, else the root's only tenant, else null. */
  readonly tenant: string | null;
  readonly capability_hash: string;
  readonly session_id: string | null;
  readonly task_id: string | null;
}

/** One entry ready to be appended: its columns, its canonical body (lineage as link ids) and its links' canonical encodings. */
export interface EncodedEvent {
  readonly columns: EventColumns;
  readonly body: string;
  readonly links: readonly { readonly id: string; readonly text: string }[];
}

/** An encoded intent, and what its completion needs: the scrubber of the values its request had redacted. */
export interface EncodedIntent extends EncodedEvent {
  readonly scrub: (text: string) => string;
}

/** The text a Merkle leaf hashes: the body, then one line per lineage link. Canonical JSON holds no newline. */
export function leafText(body: string, linkTexts: readonly string[]): string {
  let out = body;
  for (const t of linkTexts) out += `\n${t}`;
  return out;
}

const MAX_MESSAGE = 2000;

const name = z.string().min(1).max(256);
const HEX64 = /^[0-9a-f]{64}$/;
const hex64 = z.string().regex(HEX64, "must be a hex SHA-256");
const count = z.number().int().nonnegative();

// Kernel-owned data (links, mint record) is logged whole, so only the fields indexed are checked;
// the invocation's own parts are strict, so a new field gets a conscious decision about redaction.
const deniedSchema = z.strictObject({
  allowed: z.literal(false),
  capabilityId: name,
  code: name,
  link: count,
  linkId: z.string().max(256),
  rule: z.string().max(256),
  because: z.string(),
  reason: z.string(),
  retryAt: count.max(Number.MAX_SAFE_INTEGER).optional(),
});
// What a grant attached in shadow would have denied of an allowed request.
const allowedSchema = z.strictObject({
  allowed: z.literal(true),
  capabilityId: name,
  shadow: z.strictObject({ link: count, linkId: z.string().max(256), rule: z.string().max(256), because: z.string() }).optional(),
});
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const rows = z.array(z.record(z.string(), scalar));
const outcomeSchema = z.discriminatedUnion("ok", [
  z.strictObject({
    ok: z.literal(true),
    resultBytes: count.nullable(),
    // A database write's rows, before and after, as its capability may see them.
    changes: z.strictObject({ before: rows, after: rows }).optional(),
    // A revocation's outcome: why, and what it reached in the revoking process.
    reason: z.string().max(1000).optional(),
    reached: z.strictObject({ capabilities: count, tokens: count, sessions: count }).optional(),
  }),
  z.strictObject({ ok: z.literal(false), errorCode: name, message: z.string() }),
]);
const intentFields = {
  id: name,
  at: count.max(Number.MAX_SAFE_INTEGER),
  kind: z.enum(["tool", "resource", "revocation", "approval"]),
  tool: name.nullable(),
  toolCode: z.enum(["sandboxed", "trusted"]).optional(),
  request: z.looseObject({ action: z.string() }),
  decision: z.discriminatedUnion("allowed", [allowedSchema, deniedSchema]),
  approval: z
    .strictObject({
      id: name,
      stage: z.enum(["proposed", "approved", "denied", "expired", "cancelled", "executed"]),
      by: name.optional(),
      reason: z.string().max(1000).optional(),
      argsHash: hex64.nullable(),
    })
    .optional(),
  reason: z.string().min(1).max(1000).optional(),
  subject: z.looseObject({
    capabilityId: name,
    capabilityHash: hex64,
    // Each link's id and hash are checked by hand below: parsing whole grants here would double the cost of a write.
    lineage: z.array(z.unknown()).min(1).max(1024),
    mint: z.looseObject({ principal: name, requestId: name, tenants: z.array(z.string()) }),
    sessionId: name.nullable(),
    taskId: name.nullable(),
  }),
};
const eventSchema = z.strictObject({ ...intentFields, durationMs: z.number().nonnegative(), outcome: outcomeSchema });
const intentSchema = z.strictObject({ ...intentFields, decision: allowedSchema });
const completionSchema = z.strictObject({
  id: name,
  durationMs: z.number().nonnegative(),
  outcome: outcomeSchema,
  denial: z.strictObject({ request: z.looseObject({ action: z.string() }), decision: deniedSchema }).optional(),
});

type Data = Record<string, PlainData>;

/**
 * Validates an event or an intent (InvalidInput naming the field) on a
 * plain-data snapshot, so a getter or Proxy cannot show one thing to the
 * check and another to the log.
 */
function validated(value: unknown, schema: typeof eventSchema | typeof intentSchema, what: string): PlainData {
  const data = snapshot(value, what);
  const parsed = schema.safeParse(data);
  if (!parsed.success) throw new InvalidInput(describeIssues(what, parsed.error));
  const e = parsed.data;
  e.subject.lineage.forEach((link, i) => {
    const id = at(link, "id");
    const hash = at(link, "hash");
    if (typeof id !== "string" || id.length === 0 || id.length > 256 || typeof hash !== "string" || !HEX64.test(hash)) {
      throw new InvalidInput(`invalid ${what}: subject.lineage.${String(i)} must be a link summary with an id and a hex SHA-256 hash`);
    }
  });
  const last = e.subject.lineage.at(-1);
  if (at(last, "id") !== e.subject.capabilityId || at(last, "hash") !== e.subject.capabilityHash) {
    throw new InvalidInput(`invalid ${what}: subject.lineage must end with the capability itself (same id and hash)`);
  }
  if (e.decision.capabilityId !== e.subject.capabilityId) {
    throw new InvalidInput(`invalid ${what}: the decision was made for a different capability than the subject's`);
  }
  if (new Set(e.subject.lineage.map((l) => at(l, "id"))).size !== e.subject.lineage.length) {
    throw new InvalidInput(`invalid ${what}: subject.lineage repeats a link id`);
  }
  checkRequest(e.request);
  return data;
}

const own = (v: unknown, key: string): unknown => (typeof v === "object" && v !== null && Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined);

/**
 * A plain-data snapshot of an event. Lineage links the kernel made are
 * frozen plain data already: they are kept as they are (each read once),
 * which spares copying every grant of every link on every write; anything
 * else is copied.
 */
function snapshot(value: unknown, what: string): PlainData {
  const subject = own(value, "subject");
  const lineage = own(subject, "lineage");
  if (!Array.isArray(lineage)) return snapshotPlainData(value, what);
  const links: unknown[] = [...(lineage as unknown[])];
  if (!links.every(isLinkSummary)) return snapshotPlainData(value, what);
  // Each property read once, into copies the checks and the log then share.
  const data = snapshotPlainData({ ...(value as object), subject: { ...(subject as object), lineage: [] } }, what) as Record<string, PlainData>;
  (data.subject as Record<string, unknown>).lineage = links;
  return data;
}

/** Validates one whole event (InvalidInput naming the field), redacts it and encodes it canonically. */
export function encodeEvent(event: AuditEvent, redact: Redactor): EncodedEvent {
  return encodeValidEvent(validated(event, eventSchema, "audit event") as unknown as AuditEvent, redact);
}

/** Validates an intent (its decision must allow), redacts it and encodes it canonically, keeping its scrubber for the completion. */
export function encodeIntent(intent: AuditIntent, redact: Redactor): EncodedIntent {
  return encodeEntry("intent", validated(intent, intentSchema, "audit intent") as unknown as AuditIntent, redact);
}

/**
 * The encoding step of `encodeEvent`, for an event already validated (or
 * built by code that cannot produce an invalid one, such as a benchmark's
 * bulk loader): redaction, then canonical JSON.
 */
export function encodeValidEvent(event: AuditEvent, redact: Redactor): EncodedEvent {
  const { columns, body, links } = encodeEntry("event", event, redact);
  return { columns, body, links };
}

function encodeEntry(phase: "event" | "intent", event: AuditIntent | AuditEvent, redact: Redactor): EncodedIntent {
  const { subject } = event;
  const ids = subject.lineage.map((l) => l.id);
  const { request, scrub } = redact.request(event.request as unknown as Data);
  const decision = event.decision.allowed ? event.decision : { ...event.decision, because: scrub(event.decision.because), reason: scrub(event.decision.reason) };
  const outcome = "outcome" in event ? storedOutcome(event.outcome, scrub, redact) : undefined;
  const stored = { ...event, entry: phase, request, decision, ...(outcome === undefined ? {} : { outcome }), subject: { ...subject, lineage: ids } };
  const columns = columnsOf(stored);
  if (columns === null) throw new InvalidInput(`invalid audit ${phase}: its columns cannot be derived`);
  return { columns, body: canonical(stored), links: subject.lineage.map((link, i) => ({ id: ids[i] as string, text: redact.linkText(link) })), scrub };
}

/**
 * Validates a completion and encodes it as the outcome entry of `intent`:
 * its outcome message scrubbed of what the intent's request had redacted,
 * and a denial met while acting redacted like any request.
 */
export function encodeCompletion(completion: AuditCompletion, intent: EncodedIntent, redact: Redactor): EncodedEvent {
  const parsed = completionSchema.safeParse(snapshotPlainData(completion, "audit completion"));
  if (!parsed.success) throw new InvalidInput(describeIssues("audit completion", parsed.error));
  const c = parsed.data;
  if (c.id !== intent.columns.id) throw new InvalidInput(`invalid audit completion: it names ${c.id}, not the intent ${intent.columns.id}`);
  let scrub = intent.scrub;
  let denial: Data | undefined;
  if (c.denial !== undefined) {
    checkRequest(c.denial.request);
    const redacted = redact.request(c.denial.request as Data);
    const both = (text: string) => redacted.scrub(intent.scrub(text));
    scrub = both;
    denial = { request: redacted.request, decision: { ...c.denial.decision, because: both(c.denial.decision.because), reason: both(c.denial.decision.reason) } as Data };
  }
  const outcome = storedOutcome(c.outcome as AuditOutcome, scrub, redact);
  const stored = { entry: "outcome", id: c.id, durationMs: c.durationMs, outcome, ...(denial === undefined ? {} : { denial }) };
  return { columns: outcomeColumns(intent.columns, stored), body: canonical(stored), links: [] };
}

/** An outcome as the log stores it: a failure's message scrubbed and bounded, a write's rows redacted by the policy. */
function storedOutcome(outcome: AuditOutcome, scrub: (text: string) => string, redact: Redactor): AuditOutcome {
  if (!outcome.ok) return { ...outcome, message: scrub(outcome.message).slice(0, MAX_MESSAGE) };
  return outcome.changes === undefined ? outcome : { ...outcome, changes: redact.changes(outcome.changes) };
}

/** An outcome entry's columns: its intent's, with `allowed` saying whether a denial was met while acting. */
export function outcomeColumns(intent: EventColumns, body: unknown): EventColumns {
  return { ...intent, phase: PHASE.outcome, allowed: at(body, "denial") === undefined ? intent.allowed : 0 };
}

/** Reads `obj.a.b…` from parsed JSON, or undefined. */
function at(obj: unknown, ...path: string[]): unknown {
  let v = obj;
  for (const k of path) {
    if (typeof v !== "object" || v === null || Array.isArray(v) || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

/** What a request acts on, as a string that prefix queries match. */
function resourceOf(request: unknown): string | null {
  const action = at(request, "action");
  switch (action) {
    case "fs.read":
    case "fs.write":
    case "fs.list":
    case "fs.delete":
      return str(at(request, "path"));
    case "http.request": {
      const url = str(at(request, "url"));
      if (url === null || !URL.canParse(url)) return null;
      const parsed = new URL(url);
      return `${parsed.origin}${parsed.pathname}`;
    }
    case "db.read":
    case "db.create":
    case "db.update":
    case "db.delete": {
      const model = str(at(request, "model"));
      return model === null ? null : `db:${model}`;
    }
    case "exec": {
      const argv = at(request, "argv");
      return Array.isArray(argv) ? str(argv[0]) : null;
    }
    case "revoke": {
      const target = str(at(request, "target"));
      const id = str(at(request, "id"));
      return target === null || id === null ? null : `${target}:${id}`;
    }
    default:
      return null;
  }
}

/** The indexed columns of a stored body (parsed), or null when it is not an event's body. */
export function columnsOf(body: unknown): EventColumns | null {
  const entry = at(body, "entry");
  if (entry !== "event" && entry !== "intent") return null;
  const id = str(at(body, "id"));
  const atMs = at(body, "at");
  const action = str(at(body, "request", "action"));
  const allowed = at(body, "decision", "allowed");
  const principal = str(at(body, "subject", "mint", "principal"));
  const requestId = str(at(body, "subject", "mint", "requestId"));
  const capabilityHash = str(at(body, "subject", "capabilityHash"));
  if (id === null || typeof atMs !== "number" || action === null || typeof allowed !== "boolean") return null;
  if (principal === null || requestId === null || capabilityHash === null) return null;
  const tenants = at(body, "subject", "mint", "tenants");
  const rootTenant = Array.isArray(tenants) && tenants.length === 1 ? str(tenants[0]) : null;
  return {
    id,
    phase: PHASE[entry],
    at: atMs,
    tool: str(at(body, "tool")),
    action,
    resource: resourceOf(at(body, "request")),
    allowed: allowed ? 1 : 0,
    principal,
    request_id: requestId,
    tenant: str(at(body, "request", "tenant")) ?? rootTenant,
    capability_hash: capabilityHash,
    session_id: str(at(body, "subject", "sessionId")),
    task_id: str(at(body, "subject", "taskId")),
  };
}

/** The link ids a stored body lists as its lineage, root first (empty when the body is not an event's). */
export function lineageIdsOf(body: unknown): string[] {
  const ids = at(body, "subject", "lineage");
  return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === "string") : [];
}

/**
 * An event as the log tells it: what its intent (or its whole entry) says,
 * and how it ended, or null for both when no outcome was recorded (the
 * invocation is in flight, or its process stopped between acting and
 * recording the outcome).
 */
export interface LoggedEvent {
  readonly id: string;
  readonly at: number;
  readonly kind: AuditEvent["kind"];
  readonly tool: string | null;
  readonly toolCode?: ToolCode;
  readonly request: Request;
  readonly decision: AuditEvent["decision"];
  readonly subject: AuditEvent["subject"];
  readonly durationMs: number | null;
  readonly outcome: AuditOutcome | null;
  /** Only on events of kind "approval": the step of the approval. */
  readonly approval?: ApprovalRecord;
  /** A database write's reason, as its caller gave it. */
  readonly reason?: string;
}

/**
 * Rebuilds an event from its parsed stored body (an intent's or a whole
 * event's), its links' encodings, and, for an intent, its outcome's body if
 * one was recorded. Throws AuditFailure when a link is missing from the log.
 */
export function decodeEvent(body: unknown, links: ReadonlyMap<string, { readonly text: string }>, outcome: unknown = null): LoggedEvent {
  const lineage = lineageIdsOf(body).map((id) => {
    const link = links.get(id);
    if (link === undefined) throw new AuditFailure(`lineage link ${id} of audit event ${String(at(body, "id"))} is missing from the log; run verify`);
    return JSON.parse(link.text) as PlainData;
  });
  const { entry, ...parsed } = body as Data;
  const event = { ...parsed, subject: { ...(parsed.subject as Data), lineage } } as unknown as LoggedEvent;
  if (entry !== "intent") return event;
  if (outcome === null) return { ...event, durationMs: null, outcome: null };
  const denial = at(outcome, "denial") as { request: Request; decision: Denied } | undefined;
  return { ...event, ...(denial ?? {}), durationMs: at(outcome, "durationMs") as number, outcome: at(outcome, "outcome") as AuditOutcome };
}
