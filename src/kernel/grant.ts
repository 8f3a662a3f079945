import { z } from "zod";
import { InvalidInput } from "./errors.js";
import { addressRangeProblem } from "./address.js";
import { absolutePathProblem, originProblem } from "./canonical-forms.js";
import { fastParseConditions, fastParseGrant } from "./grant-fast-path.js";
import { MASK_PATTERN, type FieldAction } from "./field-actions.js";
import { rowRuleSchema, type RowRule } from "./row-rules.js";
import { principalRefSchema, type RuleValue } from "./principal-refs.js";
import { ENV_NAME, IDENTIFIER } from "./names.js";
import { deepFreeze, snapshotPlainData } from "./plain-data.js";
import { AUDIT_OPS, DB_OPS, FS_OPS, HTTP_METHODS, MAX_QUORUM, REQUEST_ACTIONS, REVOCATION_TARGETS, type AuditOp, type DbOp, type FsOp, type HttpMethod, type RequestAction, type RevocationKind } from "./vocabulary.js";

export { AUDIT_OPS, DB_OPS, FS_OPS, HTTP_METHODS, MAX_QUORUM, REQUEST_ACTIONS, REVOCATION_TARGETS } from "./vocabulary.js";
export type { AuditOp, DbOp, FsOp, HttpMethod, RequestAction, RevocationKind } from "./vocabulary.js";

/** Allows revoking targets of one kind: those named in `ids`, or any when `ids` is absent. */
export interface RevokeRule {
  readonly target: RevocationKind;
  readonly ids?: readonly string[];
}

/** A value a row scope can pin a column to. */
export type Scalar = string | number | boolean | null;

/** Allows `ops` on `path`, and on everything below it unless `subtree` is false. */
export interface FsRule {
  readonly path: string;
  readonly ops: readonly FsOp[];
  readonly subtree?: boolean;
}

/** Allows `methods` to one exact origin, on paths under `pathPrefix` (default `/`). */
export interface HttpRule {
  readonly origin: string;
  readonly methods: readonly HttpMethod[];
  readonly pathPrefix?: string;
  /** Lets a host name resolve to a loopback, private or link-local address. An IP-literal origin names its address already. */
  readonly allowPrivateNetwork?: boolean;
  /**
   * The address ranges (CIDR, such as `10.1.0.0/16` or `fd00::/8`) the host
   * may resolve to, public or not: an address outside every range is denied,
   * an IP-literal origin's own included. IPv6 forms of IPv4 addresses are
   * matched as the IPv4 address they carry. Replaces `allowPrivateNetwork`;
   * a rule cannot have both.
   */
  readonly addresses?: readonly string[];
}

/** Where an auto-set field's value comes from: the principal's id, or its one tenant. */
export type AutoSetSource = "principal.user" | "principal.tenant";

/** Allows `ops` on one model, on `fields` only (all fields when absent), on rows matching every pair of `scope`. */
export interface DbRule {
  readonly model: string;
  readonly ops: readonly DbOp[];
  readonly fields?: readonly string[];
  /** Each field pinned to a value, or to the principal's (`{ principal: "user" }`, `{ principal: "tenant" }`, bound when the link is made). */
  readonly scope?: Readonly<Record<string, RuleValue>>;
  /**
   * How fields are shown (a field not named here: "allow"). A field that is
   * not "allow" can only be returned in that form (or a less revealing one),
   * never whole, filtered on, ordered by, aggregated or written; "deny"
   * removes it as if `fields` left it out.
   */
  readonly fieldActions?: Readonly<Record<string, FieldAction>>;
  /**
   * Confines the rule to rows satisfying this condition: reads, updates and
   * deletes see only such rows, a create must make one, and an update may
   * not change a field the condition names. Conditions of several links all
   * apply.
   */
  readonly rows?: RowRule;
  /** Fields an update may not set; every link's list applies. Enforced by the database resource. */
  readonly immutable?: readonly string[];
  /** Fields a create must give, not null; every link's list applies. Enforced by the database resource. */
  readonly required?: readonly string[];
  /**
   * Refuses an update or delete with no filter, and a read or aggregate with
   * neither a filter nor a limit: a call must say which rows it means.
   * Enforced by the database resource.
   */
  readonly requireFilter?: boolean;
  /**
   * Refuses a create, update or delete that gives no `reason` (a sentence
   * saying why, recorded in the write's audit event). Enforced by the
   * database resource.
   */
  readonly requireReason?: boolean;
  /**
   * Fields a create sets from the principal the chain was minted for
   * (`"principal.user"`: its id; `"principal.tenant"`: its one tenant):
   * left out, they are set; given, they must hold that value. An update may
   * not set them. Unlike `scope`, they do not confine which rows are read,
   * changed or deleted. Every link's apply. Enforced by the database resource.
   */
  readonly autoSet?: Readonly<Record<string, AutoSetSource>>;
  /** The most rows one call may read (or group into) or change; the request must name a limit at or below it. */
  readonly maxRows?: number;
  /**
   * The most rows this link and everything derived from it may read of the
   * model in total, summed over calls. Counted by the database resource that
   * serves the reads (in its process), charged to every link of the chain
   * that sets one; a read that would pass any link's total returns nothing.
   */
  readonly maxRowsRead?: number;
  /**
   * The relations of the model (as the database's schema names them) whose
   * rows a read may include, each with the fields of the included model it
   * may name (all its own grant allows, when `fields` is absent). Without
   * it, a read includes nothing. The included rows obey their own model's
   * grant as a read of it would: that model must be granted for read, and
   * its scope, row rules, field actions and row limits apply. A read may
   * include a relation only when every link's rule allows it. Enforced by
   * the database resource.
   */
  readonly include?: Readonly<Record<string, IncludeRule>>;
  /** How many levels of includes may nest below a read of the model (default 1); the least of the links' applies. */
  readonly maxIncludeDepth?: number;
}

/** What a read may include through one relation: the included model's fields it may name (absent: all its grant allows). */
export interface IncludeRule {
  readonly fields?: readonly string[];
}

/** The deepest any grant may let includes nest. */
export const MAX_INCLUDE_DEPTH = 8;

/**
 * Matches one argument: exactly, by prefix, or anything. A prefix compares
 * text only: `{ prefix: "/data/" }` also matches `/data/../etc/passwd`, so it
 * does not confine a path argument; grant exact paths for those.
 */
export type ArgPattern = string | { readonly prefix: string } | { readonly any: true };

/** Allows running `program` with arguments matching `args` (any arguments when absent), in `cwd`'s subtree, passing the `env` variables named. */
export interface ExecRule {
  readonly program: string;
  readonly args?: readonly ArgPattern[];
  /** With `args`: further arguments beyond the patterns are allowed and unconstrained. */
  readonly allowExtraArgs?: boolean;
  readonly cwd?: string;
  readonly env?: readonly string[];
}


/**
 * Requests this rule matches are allowed only once `quorum` (default 1)
 * distinct approvers named in `approvers` (principal ids, or `role:<name>`
 * for anyone minted with that role) approved that exact call; the caller
 * never counts as an approver of its own call. A rule matches calls of the
 * `tools` named and requests with one of the `actions` named; with `input`,
 * only those whose arguments have every field named, each a string matching
 * its pattern (`{ any: true }`: any value). A decision made without the
 * arguments counts the patterns as matched, so it asks for approval.
 */
export interface ApprovalRule {
  readonly tools?: readonly string[];
  readonly actions?: readonly RequestAction[];
  readonly input?: Readonly<Record<string, ArgPattern>>;
  readonly approvers: readonly string[];
  readonly quorum?: number;
}

/** Conditions of one link: they hold for the link and everything derived from it. */
export interface LinkConditions {
  /** Milliseconds since the epoch after which the link denies everything. */
  readonly expiresAt?: number;
  /** How many allowed requests the link and its descendants may make in total; 1 makes it single-use. */
  readonly maxUses?: number;
  /** Calls and cost units the link and its descendants may spend in total. */
  readonly budget?: { readonly calls?: number; readonly cost?: number };
  /** Requests must name one of these tenants. */
  readonly tenants?: readonly string[];
  /** Limits over a sliding window of time, for the link and its descendants together. */
  readonly rates?: readonly RateRule[];
}

/** The longest window a rate can count over: 31 days, in seconds. */
export const MAX_RATE_WINDOW = 31 * 24 * 3600;

/**
 * At most `calls` allowed requests and `cost` units within any `per` seconds
 * (a sliding window), counting only calls of the `tools` named and requests
 * with one of the `actions` named, or every request when it names neither.
 * A refusal says when the next request would fit.
 */
export interface RateRule {
  readonly per: number;
  readonly calls?: number;
  readonly cost?: number;
  readonly tools?: readonly string[];
  readonly actions?: readonly RequestAction[];
}

/**
 * What one link allows: plain, serializable data. A domain the grant does not
 * mention is not granted by it.
 */
export interface Grant extends LinkConditions {
  readonly tools?: readonly string[];
  readonly fs?: readonly FsRule[];
  readonly http?: readonly HttpRule[];
  readonly db?: readonly DbRule[];
  readonly exec?: readonly ExecRule[];
  /** Revocations the holder may record in the application's token store (an administrator's grant; the gateway's revoke route asks for it). */
  readonly revoke?: readonly RevokeRule[];
  /** Operations on the audit log; with `tenants`, only events of those tenants. */
  readonly audit?: readonly AuditOp[];
  /**
   * Requests that need human approval of the exact call. Unlike the domains,
   * a grant without `approval` requires none; each link's rules hold for
   * everything derived from it, so a narrowing can add rules, never drop one.
   */
  readonly approval?: readonly ApprovalRule[];
}

const absolutePath = z.string().superRefine((p, ctx) => {
  const problem = absolutePathProblem(p);
  if (problem) ctx.addIssue({ code: "custom", message: `path ${JSON.stringify(p)} ${problem}` });
});
const identifier = z.string().regex(IDENTIFIER, "must be an identifier (letters, digits, _; not starting with a digit)");
const name = z.string().min(1).max(256).regex(/^[^\0]+$/, "must not contain NUL");
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const nonEmptyList = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(1024);

const fsRuleSchema = z.strictObject({
  path: absolutePath,
  ops: nonEmptyList(z.enum(FS_OPS)),
  subtree: z.boolean().optional(),
});

const addressRange = z.string().superRefine((r, ctx) => {
  const problem = addressRangeProblem(r);
  if (problem) ctx.addIssue({ code: "custom", message: `${JSON.stringify(r)} ${problem}` });
});

const httpRuleSchema = z
  .strictObject({
    origin: z.string().superRefine((o, ctx) => {
      const problem = originProblem(o);
      if (problem) ctx.addIssue({ code: "custom", message: `origin ${JSON.stringify(o)} ${problem}` });
    }),
    methods: nonEmptyList(z.enum(HTTP_METHODS)),
    pathPrefix: z.string().startsWith("/", "must start with /").optional(),
    allowPrivateNetwork: z.boolean().optional(),
    addresses: nonEmptyList(addressRange).optional(),
  })
  .superRefine((r, ctx) => {
    if (r.addresses !== undefined && r.allowPrivateNetwork !== undefined) {
      ctx.addIssue({ code: "custom", path: ["allowPrivateNetwork"], message: "cannot be set with addresses, which already say which addresses the host may resolve to" });
    }
  });

const fieldActionSchema = z.union([
  z.enum(["allow", "hash", "redact", "deny"]),
  z.strictObject({ mask: z.string().regex(MASK_PATTERN, "must be 1 to 64 characters, with {firstN} or {lastN} (N from 1 to 9) as the only braces") }),
]);

/** The sources an auto-set field can take its value from. */
export const AUTO_SET_SOURCES = ["principal.user", "principal.tenant"] as const;

const dbRuleSchema = z.strictObject({
  model: identifier,
  ops: nonEmptyList(z.enum(DB_OPS)),
  fields: z.array(identifier).max(1024).optional(),
  scope: z.record(identifier, z.union([scalar, principalRefSchema])).optional(),
  fieldActions: z.record(identifier, fieldActionSchema).optional(),
  rows: rowRuleSchema.optional(),
  immutable: z.array(identifier).max(1024).optional(),
  required: z.array(identifier).max(1024).optional(),
  requireFilter: z.boolean().optional(),
  requireReason: z.boolean().optional(),
  autoSet: z.record(identifier, z.enum(AUTO_SET_SOURCES)).optional(),
  maxRows: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  maxRowsRead: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
  include: z.record(identifier, z.strictObject({ fields: z.array(identifier).max(1024).optional() })).optional(),
  maxIncludeDepth: z.number().int().min(1).max(MAX_INCLUDE_DEPTH).optional(),
});

const argPatternSchema = z.union([
  z.string(),
  z.strictObject({ prefix: z.string() }),
  z.strictObject({ any: z.literal(true) }),
]);

const execRuleSchema = z.strictObject({
  program: absolutePath,
  args: z.array(argPatternSchema).max(1024).optional(),
  allowExtraArgs: z.boolean().optional(),
  cwd: absolutePath.optional(),
  env: z.array(z.string().regex(ENV_NAME, "must be an environment variable name")).optional(),
});

const revokeRuleSchema = z.strictObject({
  target: z.enum(REVOCATION_TARGETS),
  ids: z.array(z.string().min(1).max(256)).min(1).max(1024).optional(),
});

const approvalRuleSchema = z
  .strictObject({
    tools: nonEmptyList(name).optional(),
    actions: nonEmptyList(z.enum(REQUEST_ACTIONS)).optional(),
    input: z.record(name, argPatternSchema).optional(),
    approvers: nonEmptyList(name),
    quorum: z.number().int().min(1).max(MAX_QUORUM).optional(),
  })
  .superRefine((r, ctx) => {
    if (r.tools === undefined && r.actions === undefined) {
      ctx.addIssue({ code: "custom", message: "must name the tools or the actions that need approval" });
    }
    const quorum = r.quorum ?? 1;
    if (quorum > r.approvers.length && !r.approvers.some((a) => a.startsWith("role:"))) {
      ctx.addIssue({ code: "custom", path: ["quorum"], message: `asks ${quorum} approvers to agree but names only ${r.approvers.length} principals and no role` });
    }
  });

const rateRuleSchema = z
  .strictObject({
    per: z.number().int().min(1).max(MAX_RATE_WINDOW),
    calls: z.number().int().nonnegative().optional(),
    cost: z.number().nonnegative().optional(),
    tools: nonEmptyList(name).optional(),
    actions: nonEmptyList(z.enum(REQUEST_ACTIONS)).optional(),
  })
  .refine((r) => r.calls !== undefined || r.cost !== undefined, "must limit calls, cost or both");

const conditionShape = {
  expiresAt: z.number().int().nonnegative().optional(),
  maxUses: z.number().int().positive().optional(),
  budget: z
    .strictObject({
      calls: z.number().int().nonnegative().optional(),
      cost: z.number().nonnegative().optional(),
    })
    .optional(),
  tenants: nonEmptyList(name).optional(),
  rates: z.array(rateRuleSchema).min(1).max(16).optional(),
};

const conditionsSchema = z.strictObject(conditionShape);

const grantSchema = z.strictObject({
  ...conditionShape,
  tools: z.array(name).max(1024).optional(),
  fs: z.array(fsRuleSchema).max(1024).optional(),
  http: z.array(httpRuleSchema).max(1024).optional(),
  db: z.array(dbRuleSchema).max(1024).optional(),
  exec: z.array(execRuleSchema).max(1024).optional(),
  revoke: z.array(revokeRuleSchema).max(1024).optional(),
  audit: nonEmptyList(z.enum(AUDIT_OPS)).optional(),
  approval: z.array(approvalRuleSchema).max(1024).optional(),
});

/** Turns zod issues into one message a person can act on, naming each field. */
export function describeIssues(what: string, error: z.ZodError): string {
  const lines = error.issues.slice(0, 5).map((issue) => {
    const where = issue.path.length > 0 ? issue.path.map(String).join(".") : "(top level)";
    return `${where}: ${issue.message}`;
  });
  const more = error.issues.length > 5 ? `; and ${error.issues.length - 5} more` : "";
  return `invalid ${what}: ${lines.join("; ")}${more}`;
}

function parseWith(schema: z.ZodType, value: unknown, what: string): unknown {
  const result = schema.safeParse(snapshotPlainData(value, what));
  if (!result.success) throw new InvalidInput(describeIssues(what, result.error));
  return deepFreeze(result.data);
}

/** The schemas' own verdict, without the fast path: for the test that holds the fast path to them. */
export function schemaParseGrant(value: unknown): Grant {
  return parseWith(grantSchema, value, "grant") as Grant;
}

/**
 * Every grant parseGrant returned, and every link's grant the kernel handed
 * out (see `handedOut`): deep-frozen copies, so one handed back needs no
 * second reading. A link's grant is added when it leaves the kernel, not
 * when it is read: adding to a WeakSet costs about a tenth of a narrowing,
 * and most links' grants never leave.
 */
const PARSED_GRANTS = new WeakSet<object>();

/** Hardened grants the application passed (see `hardened`), with what parseGrant made of each: they cannot change, so each is read once. */
const HARDENED_INPUTS = new WeakMap<object, Grant>();

/** A hardened grant has at most this many objects and arrays: more is not checked, and such a grant is read at every use. */
const MAX_HARDENED_PARTS = 4096;

/**
 * Whether `value` can never read differently: it and every object and array
 * reachable from it are frozen, hold data properties only (a getter could
 * answer differently each time), and every array has all its items (reading
 * a hole reads its prototype, which may change). A frozen proxy is bound by
 * the same rules, as the language holds its traps to the frozen target; one
 * whose traps throw is not hardened.
 */
function hardened(value: object): boolean {
  try {
    return hardenedParts(value);
  } catch {
    return false;
  }
}

function hardenedParts(value: object): boolean {
  const seen = new Set<object>();
  const pending: object[] = [value];
  while (pending.length > 0) {
    const next = pending.pop() as object;
    if (seen.has(next)) continue;
    if (seen.size >= MAX_HARDENED_PARTS || !Object.isFrozen(next)) return false;
    seen.add(next);
    if (Array.isArray(next)) {
      for (let i = 0; i < next.length; i++) if (!Object.hasOwn(next, i)) return false;
    }
    for (const key of Reflect.ownKeys(next)) {
      const d = Reflect.getOwnPropertyDescriptor(next, key);
      if (d === undefined || !("value" in d)) return false;
      if (typeof d.value === "object" && d.value !== null) pending.push(d.value as object);
      else if (typeof d.value === "function") return false;
    }
  }
  return true;
}

/**
 * Validates a grant; throws InvalidInput naming every bad field. The result is
 * a frozen copy, or `value` itself when it is already a result of parseGrant
 * or a link's grant a capability showed (deep-frozen, so it cannot have
 * changed since it was read). A hardened grant (deep-frozen plain data, as
 * `harden` or a deep Object.freeze makes it) is read once: later uses get
 * the same result without reading it again.
 */
export function parseGrant(value: unknown): Grant {
  return handedOut(readGrant(value));
}

/**
 * parseGrant for a grant that stays in the kernel (a new link's): the same
 * checks and result, without remembering the result as parsed.
 */
// The schemas omit absent optional keys rather than setting them to undefined, so their output is exactly a Grant.
export function readGrant(value: unknown): Grant {
  if (typeof value === "object" && value !== null) {
    if (PARSED_GRANTS.has(value)) return value;
    const known = HARDENED_INPUTS.get(value);
    if (known !== undefined) return known;
  }
  // Checked before the grant is read: reading it runs its getters and proxy traps, which could freeze it holding something else.
  const keep = typeof value === "object" && value !== null && hardened(value);
  const grant = fastParseGrant(value) ?? (parseWith(grantSchema, value, "grant") as Grant);
  // Hardened before it was read, so what was read is what it will always hold.
  if (keep) {
    HARDENED_INPUTS.set(value, grant);
    SHARED_GRANTS.add(handedOut(grant));
  }
  return grant;
}

/** `grant` (a result of readGrant, or a link's grant made from one; null for a link without one) as it leaves the kernel: a later parseGrant of it returns it as it is. */
export function handedOut<G extends Grant | null>(grant: G): G {
  if (grant !== null) PARSED_GRANTS.add(grant);
  return grant;
}

/** The parses of hardened grants: each is handed to every link made with its grant, so work done once for it can be kept. */
const SHARED_GRANTS = new WeakSet<Grant>();

/** Whether `grant` is parseGrant's reading of a hardened grant, which many links share. */
export function isSharedGrant(grant: Grant): boolean {
  return SHARED_GRANTS.has(grant);
}

/** Validates link conditions alone; throws InvalidInput naming every bad field. */
export function parseConditions(value: unknown): LinkConditions {
  return fastParseConditions(value) ?? (parseWith(conditionsSchema, value, "conditions") as LinkConditions);
}
