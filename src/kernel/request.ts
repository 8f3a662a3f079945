import { z } from "zod";
import { InvalidInput } from "./errors.js";
import { absolutePathProblem, canonicalHttpUrl } from "./canonical-forms.js";
import { DB_OPS, describeIssues, HTTP_METHODS, MAX_INCLUDE_DEPTH, REVOCATION_TARGETS, type HttpMethod, type RevocationKind, type Scalar } from "./grant.js";
import { actionKey, MASK_PATTERN, type FieldView } from "./field-actions.js";
import { deepFreeze, snapshotPlainData } from "./plain-data.js";
import { ruleKey, rowRuleSchema, type RowRule } from "./row-rules.js";
import { fastCheckRequest, NO_ROWS, NO_VIEWS } from "./request-fast-path.js";
import { rememberVerdicts } from "./fixed-verdicts.js";
import { ENV_NAME, IDENTIFIER, REQUEST_LIMITS } from "./names.js";

interface Tenanted {
  /** The tenant the request acts for; required by links that carry `tenants`. */
  readonly tenant?: string;
}

/** Calling one tool by name. */
export interface ToolRequest extends Tenanted {
  readonly action: "tool.call";
  readonly tool: string;
}

/** One file-system action on an already-resolved absolute path. */
export interface FsRequest extends Tenanted {
  readonly action: "fs.read" | "fs.write" | "fs.list" | "fs.delete";
  readonly path: string;
}

/** One HTTP request; `address` is the IP address that will be connected to, once resolved. */
export interface HttpRequest extends Tenanted {
  readonly action: "http.request";
  readonly method: HttpMethod;
  readonly url: string;
  readonly address?: string;
}

/**
 * One structured database operation: the fields it uses whole (read, written,
 * filtered on, ordered by), the fields it returns only masked, hashed or
 * redacted (`views`), and the row scope it is confined to.
 */
export interface DbRequest extends Tenanted {
  readonly action: "db.read" | "db.create" | "db.update" | "db.delete";
  readonly model: string;
  readonly fields: readonly string[];
  readonly scope: Readonly<Record<string, Scalar>>;
  readonly views?: Readonly<Record<string, FieldView>>;
  /** The row rules the operation is confined by: every one a link of the chain sets must be among them. */
  readonly rows?: readonly RowRule[];
  /** The most rows the operation reads (or groups into) or changes; links with maxRows require it. */
  readonly limit?: number;
  /**
   * For a read: the relations whose rows it includes, each with the fields
   * of the related model it names (absent: what the grants show) and the
   * relations it includes in turn. Like a db rule's `include`, this is
   * decided by the database resource against every link's rule, not by the
   * kernel; it names what a tool's call will include, so that the grant of
   * the call's needs lets it include exactly that (see grantForNeeds).
   */
  readonly include?: Readonly<Record<string, IncludeNeed>>;
}

/** One relation a read includes, as a request names it. */
export interface IncludeNeed {
  readonly fields?: readonly string[];
  readonly include?: Readonly<Record<string, IncludeNeed>>;
}

/** Running one program: `argv[0]` is its absolute path; `env` names the variables passed through. */
export interface ExecRequest extends Tenanted {
  readonly action: "exec";
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env?: readonly string[];
}

/** Recording a revocation in the application's token store: what kind of target, and which. */
export interface RevokeRequest extends Tenanted {
  readonly action: "revoke";
  readonly target: RevocationKind;
  readonly id: string;
}

/** Reading the audit log: its events, checkpoints and lineage, for the tenant named (every tenant's when none is). */
export interface AuditRequest extends Tenanted {
  readonly action: "audit.read";
}

/** The canonical description of one action, as DESIGN.md defines it. */
export type Request = ToolRequest | FsRequest | HttpRequest | DbRequest | ExecRequest | RevokeRequest | AuditRequest;

/** The action names a Request can carry. */
export type Action = Request["action"];

const absolutePath = z.string().superRefine((p, ctx) => {
  const problem = absolutePathProblem(p);
  if (problem) ctx.addIssue({ code: "custom", message: `path ${JSON.stringify(p)} ${problem}; resolve it before authorizing` });
});

const tenant = z.string().min(1).max(REQUEST_LIMITS.name).optional();
const identifier = z.string().regex(IDENTIFIER, "must be an identifier");

const toolSchema = z.object({ action: z.literal("tool.call"), tool: z.string().min(1).max(REQUEST_LIMITS.name), tenant });
const fsSchema = z.object({ action: z.enum(["fs.read", "fs.write", "fs.list", "fs.delete"]), path: absolutePath, tenant });
const httpSchema = z.object({
    action: z.literal("http.request"),
    method: z.enum(HTTP_METHODS),
    url: z.string().max(REQUEST_LIMITS.url),
    address: z.union([z.ipv4(), z.ipv6()]).optional(),
    tenant,
  });
/** Relations one level of a request's include may name. */
const MAX_INCLUDED = 32;
/** An include nested at most MAX_INCLUDE_DEPTH levels, as a grant's maxIncludeDepth may allow. */
const includeSchema = (depth: number): z.ZodType =>
  z
    .record(identifier, depth > 1 ? z.strictObject({ fields: z.array(identifier).max(REQUEST_LIMITS.fields).optional(), include: includeSchema(depth - 1).optional() }) : z.strictObject({ fields: z.array(identifier).max(REQUEST_LIMITS.fields).optional() }))
    .refine((r) => Object.keys(r).length <= MAX_INCLUDED, `must name at most ${MAX_INCLUDED} relations`);
const dbSchema = z.object({
    action: z.enum(DB_OPS.map((op) => `db.${op}` as const) as ["db.read", "db.create", "db.update", "db.delete"]),
    model: identifier,
    fields: z.array(identifier).max(REQUEST_LIMITS.fields),
    scope: z.record(identifier, z.union([z.string(), z.number(), z.boolean(), z.null()])),
    views: z
      .record(identifier, z.union([z.enum(["hash", "redact"]), z.strictObject({ mask: z.string().regex(MASK_PATTERN, "must be a mask pattern") })]))
      .optional(),
    rows: z.array(rowRuleSchema).max(64).optional(),
    limit: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).optional(),
    include: includeSchema(MAX_INCLUDE_DEPTH).optional(),
    tenant,
  });
const execSchema = z.object({
    action: z.literal("exec"),
    argv: z.array(z.string().regex(/^[^\0]*$/, "must not contain NUL")).min(1).max(REQUEST_LIMITS.argv),
    cwd: absolutePath,
    env: z.array(z.string().regex(ENV_NAME)).optional(),
    tenant,
  });

const revokeSchema = z.object({
    action: z.literal("revoke"),
    target: z.enum(REVOCATION_TARGETS),
    id: z.string().min(1).max(REQUEST_LIMITS.name),
    tenant,
  });

const auditSchema = z.object({ action: z.literal("audit.read"), tenant });

interface Shape {
  readonly schema: z.ZodType;
  readonly keys: readonly string[];
}

const shape = (schema: z.ZodObject): Shape => ({ schema, keys: Object.keys(schema.shape) });
const TOOL = shape(toolSchema);
const FS = shape(fsSchema);
const HTTP = shape(httpSchema);
const DB = shape(dbSchema);
const EXEC = shape(execSchema);
const REVOKE = shape(revokeSchema);
const AUDIT = shape(auditSchema);

/** The schema and field names of each action, looked up by own property only. */
const SHAPES: Readonly<Record<string, Shape>> = Object.freeze(
  Object.assign(Object.create(null) as Record<string, Shape>, {
    "tool.call": TOOL,
    "fs.read": FS,
    "fs.write": FS,
    "fs.list": FS,
    "fs.delete": FS,
    "http.request": HTTP,
    "db.read": DB,
    "db.create": DB,
    "db.update": DB,
    "db.delete": DB,
    exec: EXEC,
    revoke: REVOKE,
    "audit.read": AUDIT,
  }),
);

/**
 * Copies exactly the fields of the action's shape, each read as an own
 * property (absent ones become explicit undefined), and refuses any other
 * field. The copy is an ordinary object, which keeps validation fast, and no
 * key of it can be inherited from a polluted prototype.
 */
function ownFields(value: unknown): Record<string, unknown> & { action: string } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidInput(`invalid request: expected an object such as { action: "fs.read", path: "/data/a.txt" }, got ${value === null ? "null" : typeof value}`);
  }
  const action: unknown = Object.hasOwn(value, "action") ? (value as { action: unknown }).action : undefined;
  const found = typeof action === "string" ? SHAPES[action] : undefined;
  if (found === undefined) {
    throw new InvalidInput(`invalid request: action: must be one of ${Object.keys(SHAPES).join(", ")}; got ${typeof action === "string" ? JSON.stringify(action) : action === undefined ? "no action" : typeof action}`);
  }
  for (const key of Object.keys(value)) {
    if (!found.keys.includes(key)) throw new InvalidInput(`invalid request: ${key}: is not a field of a ${action as string} request`);
  }
  const out: Record<string, unknown> = {};
  for (const key of found.keys) {
    const v: unknown = Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined;
    out[key] = typeof v === "object" && v !== null ? snapshotPlainData(v, `request.${key}`) : v;
  }
  return out as Record<string, unknown> & { action: string };
}

/** A request that passed validation, before it is put in checked form. */
export type ParsedRequest =
  | z.infer<typeof toolSchema>
  | z.infer<typeof fsSchema>
  | z.infer<typeof httpSchema>
  | z.infer<typeof dbSchema>
  | z.infer<typeof execSchema>
  | z.infer<typeof revokeSchema>
  | z.infer<typeof auditSchema>;

/**
 * A validated request in the form the matcher reads: every key present as an
 * own property (nothing can be inherited), the URL parsed once.
 */
export type CheckedRequest =
  | { readonly kind: "tool"; readonly action: "tool.call"; readonly tenant: string | null; readonly tool: string }
  | { readonly kind: "fs"; readonly action: FsRequest["action"]; readonly tenant: string | null; readonly op: string; readonly path: string }
  | {
      readonly kind: "http";
      readonly action: "http.request";
      readonly tenant: string | null;
      readonly method: HttpMethod;
      readonly url: URL;
      readonly address: string | null;
    }
  | {
      readonly kind: "db";
      readonly action: DbRequest["action"];
      readonly tenant: string | null;
      readonly op: string;
      readonly model: string;
      readonly fields: readonly string[];
      readonly scope: ReadonlyMap<string, Scalar>;
      /** Fields returned other than whole, each with its view as actionKey writes it. */
      readonly views: ReadonlyMap<string, string>;
      /** The row rules it is confined by, each as ruleKey writes it. */
      readonly rows: ReadonlySet<string>;
      readonly limit: number | null;
      /** What a read includes, relation names sorted at every level, frozen; null when it includes nothing. */
      readonly include: Readonly<Record<string, IncludeNeed>> | null;
    }
  | {
      readonly kind: "exec";
      readonly action: "exec";
      readonly tenant: string | null;
      readonly argv: readonly string[];
      readonly cwd: string;
      readonly env: readonly string[];
    }
  | { readonly kind: "revoke"; readonly action: "revoke"; readonly tenant: string | null; readonly target: RevocationKind; readonly id: string }
  | { readonly kind: "audit"; readonly action: "audit.read"; readonly tenant: string | null; readonly op: "read" };

/** Validates a request with its zod schema; throws InvalidInput naming the bad field. */
export function parseRequest(value: unknown): ParsedRequest {
  const data = ownFields(value);
  const parsed = (SHAPES[data.action] as Shape).schema.safeParse(data);
  if (!parsed.success) throw new InvalidInput(describeIssues("request", parsed.error));
  return parsed.data as ParsedRequest;
}

/**
 * Requests made by preparedRequest, with their checked form. Each key is a
 * deep-frozen copy only the kernel made, so what was checked is what every
 * later decision on it reads; a resource asking the same question on every
 * call validates it once. The decision itself is still made every time.
 */
const prepared = new WeakMap<object, CheckedRequest>();

/**
 * Validates and snapshots a request; throws InvalidInput naming the bad field.
 * Well-formed requests take the fast path; anything it does not vouch for is
 * judged by the schema, which also writes the error message.
 */
export function checkRequest(value: unknown): CheckedRequest {
  return prepared.get(value as object) ?? fastCheckRequest(value) ?? checkRequestBySchema(value);
}

/**
 * A deep-frozen copy of `request`, checked now, whose check `checkRequest`
 * then remembers. A request that fails the check is returned as it is, so
 * the decision on it refuses it with the usual InvalidInput. Kernel and
 * resources only.
 */
export function preparedRequest<R extends Request>(request: R): R {
  try {
    checkRequest(request);
  } catch (e) {
    if (e instanceof InvalidInput) return request;
    throw e;
  }
  // Copied once checked (a getter or a Proxy answers this once); the copy is checked again, as the copy is what is kept.
  const copy = deepFreeze(structuredClone(request));
  const checked = deepFreeze(checkRequest(copy));
  rememberVerdicts(checked);
  prepared.set(copy, checked);
  return copy;
}

/** `checkRequest` without the fast path: what the fast path must agree with. */
export function checkRequestBySchema(value: unknown): CheckedRequest {
  return toChecked(parseRequest(value));
}

/** An optional key's own value: a key inherited from a polluted prototype is not part of the request. */
function optional<T extends object, K extends keyof T>(r: T, key: K): T[K] | undefined {
  return Object.hasOwn(r, key) ? r[key] : undefined;
}

function rowsOf(rows: readonly RowRule[] | undefined): ReadonlySet<string> {
  return rows === undefined ? NO_ROWS : new Set(rows.map(ruleKey));
}

function viewsOf(views: Readonly<Record<string, FieldView>> | undefined): ReadonlyMap<string, string> {
  return views === undefined ? NO_VIEWS : new Map(Object.entries(views).map(([f, v]) => [f, actionKey(v)]));
}

/** A request's include with its relations in name order at every level (so equal includes have equal keys), frozen; null for none. */
function includeOf(include: Readonly<Record<string, IncludeNeed>> | undefined): Readonly<Record<string, IncludeNeed>> | null {
  if (include === undefined) return null;
  const sorted = (level: Readonly<Record<string, IncludeNeed>>): Record<string, IncludeNeed> =>
    Object.fromEntries(
      Object.keys(level)
        .sort()
        .map((name) => {
          const need = level[name] as IncludeNeed;
          const fields = optional(need, "fields");
          const nested = optional(need, "include");
          return [name, { ...(fields === undefined ? {} : { fields: [...fields] }), ...(nested === undefined ? {} : { include: sorted(nested) }) }];
        }),
    );
  return deepFreeze(sorted(include));
}

function toChecked(r: ParsedRequest): CheckedRequest {
  const t = optional(r, "tenant") ?? null;
  switch (r.action) {
    case "tool.call":
      return { kind: "tool", action: r.action, tenant: t, tool: r.tool };
    case "fs.read":
    case "fs.write":
    case "fs.list":
    case "fs.delete":
      return { kind: "fs", action: r.action, tenant: t, op: r.action.slice(3), path: r.path };
    case "http.request":
      return { kind: "http", action: r.action, tenant: t, method: r.method, url: canonicalHttpUrl(r.url), address: optional(r, "address") ?? null };
    case "db.read":
    case "db.create":
    case "db.update":
    case "db.delete":
      return {
        kind: "db",
        action: r.action,
        tenant: t,
        op: r.action.slice(3),
        model: r.model,
        fields: r.fields,
        scope: new Map(Object.entries(r.scope)),
        views: viewsOf(optional(r, "views")),
        rows: rowsOf(optional(r, "rows")),
        limit: optional(r, "limit") ?? null,
        include: includeOf(optional(r, "include") as Readonly<Record<string, IncludeNeed>> | undefined),
      };
    case "exec": {
      const program = r.argv[0] ?? "";
      const problem = absolutePathProblem(program);
      if (problem) throw new InvalidInput(`invalid request: argv.0: program path ${JSON.stringify(program)} ${problem}`);
      return { kind: "exec", action: r.action, tenant: t, argv: r.argv, cwd: r.cwd, env: optional(r, "env") ?? [] };
    }
    case "revoke":
      return { kind: "revoke", action: r.action, tenant: t, target: r.target, id: r.id };
    case "audit.read":
      return { kind: "audit", action: r.action, tenant: t, op: "read" };
  }
}

/** What a request acts on, in a few words: the tool, path, method and URL, model and row scope, or command line. */
export function requestTarget(r: Request): string {
  switch (r.action) {
    case "tool.call":
      return r.tool;
    case "fs.read":
    case "fs.write":
    case "fs.list":
    case "fs.delete":
      return r.path;
    case "http.request":
      return `${r.method} ${r.url}`;
    case "db.read":
    case "db.create":
    case "db.update":
    case "db.delete":
      return `${r.model} ${JSON.stringify(r.scope)}`;
    case "exec":
      return r.argv.join(" ");
    case "revoke":
      return `${r.target} ${r.id}`;
    case "audit.read":
      return r.tenant === undefined ? "audit log" : `audit log of ${r.tenant}`;
  }
}
