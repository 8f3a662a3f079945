import { z } from "zod";
import { AuditFailure, InvalidInput, type AuditEvent } from "../kernel/index.js";
import { checkRequest, describeIssues, snapshotPlainData, type PlainData } from "../kernel/internal.js";
import { canonical } from "./canonical.js";
import type { Redactor } from "./redaction.js";

/**
 * The indexed columns of one event, named as in the tables. They are derived
 * from the stored body alone, so the verifier can derive them again and catch
 * a column edited to hide an event from queries.
 */
export interface EventColumns {
  readonly id: string;
  readonly at: number;
  readonly tool: string | null;
  readonly action: string;
  /** fs: the path; http: origin and path; db: `db:<model>`; exec: the program; tool.call: null. */
  readonly resource: string | null;
  /** 1 when the decision allowed the request, 0 when it denied it. */
  readonly allowed: 0 | 1;
  readonly principal: string;
  readonly request_id: string;
  /** The request's tenant, else the root's only tenant, else null. */
  readonly tenant: string | null;
  readonly capability_hash: string;
  readonly session_id: string | null;
  readonly task_id: string | null;
}

/** One event ready to be chained: its columns, its canonical body (lineage as link ids) and its links' canonical encodings. */
export interface EncodedEvent {
  readonly columns: EventColumns;
  readonly body: string;
  readonly links: readonly { readonly id: string; readonly text: string }[];
}

const MAX_MESSAGE = 2000;

const name = z.string().min(1).max(256);
const HEX64 = /^[0-9a-f]{64}$/;
const hex64 = z.string().regex(HEX64, "must be a hex SHA-256");
const count = z.number().int().nonnegative();

// Kernel-owned data (links, mint record) is logged whole, so only the fields indexed are checked;
// the invocation's own parts are strict, so a new field gets a conscious decision about redaction.
const eventSchema = z.strictObject({
  id: name,
  at: count.max(Number.MAX_SAFE_INTEGER),
  durationMs: z.number().nonnegative(),
  kind: z.enum(["tool", "resource", "revocation"]),
  tool: name.nullable(),
  toolCode: z.enum(["sandboxed", "trusted"]).optional(),
  request: z.looseObject({ action: z.string() }),
  decision: z.discriminatedUnion("allowed", [
    z.strictObject({ allowed: z.literal(true), capabilityId: name }),
    z.strictObject({
      allowed: z.literal(false),
      capabilityId: name,
      code: name,
      link: count,
      linkId: z.string().max(256),
      rule: z.string().max(256),
      because: z.string(),
      reason: z.string(),
    }),
  ]),
  outcome: z.discriminatedUnion("ok", [
    z.strictObject({
      ok: z.literal(true),
      resultBytes: count.nullable(),
      // A revocation's outcome: why, and what it reached in the revoking process.
      reason: z.string().max(1000).optional(),
      reached: z.strictObject({ capabilities: count, tokens: count, sessions: count }).optional(),
    }),
    z.strictObject({ ok: z.literal(false), errorCode: name, message: z.string() }),
  ]),
  subject: z.looseObject({
    capabilityId: name,
    capabilityHash: hex64,
    // Each link's id and hash are checked by hand below: parsing whole grants here would double the cost of a write.
    lineage: z.array(z.unknown()).min(1).max(1024),
    mint: z.looseObject({ principal: name, requestId: name, tenants: z.array(z.string()) }),
    sessionId: name.nullable(),
    taskId: name.nullable(),
  }),
});

type Data = Record<string, PlainData>;

/**
 * Validates one event (InvalidInput naming the field), redacts its request
 * and free text, and encodes it canonically. Works on a plain-data snapshot,
 * so a getter or Proxy cannot show one thing to the check and another to the
 * log.
 */
export function encodeEvent(event: AuditEvent, redact: Redactor): EncodedEvent {
  const data = snapshotPlainData(event, "audit event");
  const parsed = eventSchema.safeParse(data);
  if (!parsed.success) throw new InvalidInput(describeIssues("audit event", parsed.error));
  const e = parsed.data;
  e.subject.lineage.forEach((link, i) => {
    const id = at(link, "id");
    const hash = at(link, "hash");
    if (typeof id !== "string" || id.length === 0 || id.length > 256 || typeof hash !== "string" || !HEX64.test(hash)) {
      throw new InvalidInput(`invalid audit event: subject.lineage.${String(i)} must be a link summary with an id and a hex SHA-256 hash`);
    }
  });
  const last = e.subject.lineage.at(-1);
  if (at(last, "id") !== e.subject.capabilityId || at(last, "hash") !== e.subject.capabilityHash) {
    throw new InvalidInput("invalid audit event: subject.lineage must end with the capability itself (same id and hash)");
  }
  if (e.decision.capabilityId !== e.subject.capabilityId) {
    throw new InvalidInput("invalid audit event: the decision was made for a different capability than the subject's");
  }
  if (new Set(e.subject.lineage.map((l) => at(l, "id"))).size !== e.subject.lineage.length) {
    throw new InvalidInput("invalid audit event: subject.lineage repeats a link id");
  }
  checkRequest(e.request);
  return encodeValidEvent(data as unknown as AuditEvent, redact);
}

/**
 * The encoding step of `encodeEvent`, for an event already validated (or
 * built by code that cannot produce an invalid one, such as a benchmark's
 * bulk loader): redaction, then canonical JSON.
 */
export function encodeValidEvent(event: AuditEvent, redact: Redactor): EncodedEvent {
  const { subject } = event;
  const ids = subject.lineage.map((l) => l.id);
  const { request, scrub } = redact(event.request as unknown as Data);
  const decision = event.decision.allowed ? event.decision : { ...event.decision, because: scrub(event.decision.because), reason: scrub(event.decision.reason) };
  const outcome = event.outcome.ok ? event.outcome : { ...event.outcome, message: scrub(event.outcome.message).slice(0, MAX_MESSAGE) };
  const stored = { ...event, request, decision, outcome, subject: { ...subject, lineage: ids } };
  const columns = columnsOf(stored);
  if (columns === null) throw new InvalidInput("invalid audit event: its columns cannot be derived");
  return { columns, body: canonical(stored), links: subject.lineage.map((link, i) => ({ id: ids[i] as string, text: linkText(link) })) };
}

const LINK_TEXTS = 10_000;
const linkTexts = new Map<string, string>();

/**
 * A link's canonical encoding, remembered by its JSON text: every call under
 * a session repeats the session's ancestors, and JSON.stringify is several
 * times cheaper than sorting keys. Equal JSON text means equal content, so the
 * cache can never answer for a different link.
 */
function linkText(link: unknown): string {
  const key = JSON.stringify(link);
  let text = linkTexts.get(key);
  if (text === undefined) {
    text = canonical(link);
    if (linkTexts.size >= LINK_TEXTS) linkTexts.clear();
    linkTexts.set(key, text);
  }
  return text;
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

/** Rebuilds the event from its parsed stored body and its links' encodings. Throws AuditFailure when a link is missing from the log. */
export function decodeEvent(body: unknown, links: ReadonlyMap<string, { readonly text: string }>): AuditEvent {
  const lineage = lineageIdsOf(body).map((id) => {
    const link = links.get(id);
    if (link === undefined) throw new AuditFailure(`lineage link ${id} of audit event ${String(at(body, "id"))} is missing from the log; run verify`);
    return JSON.parse(link.text) as PlainData;
  });
  const parsed = body as Data;
  return { ...parsed, subject: { ...(parsed.subject as Data), lineage } } as unknown as AuditEvent;
}
