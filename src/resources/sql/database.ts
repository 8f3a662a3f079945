import { randomBytes } from "node:crypto";
import type BetterSqlite3 from "better-sqlite3";
import type { Pool } from "pg";
import {
  denialError,
  InvalidInput,
  isCapability,
  LimitExceeded,
  NotACapability,
  type AuditSink,
  type Capability,
  type DbOp,
  type DbRequest,
  type Denied,
  type FieldView,
  type Grant,
  type Scalar,
} from "../../kernel/index.js";
import { audited, auditedSync, auditOption, jsonBytes, type Access } from "../audited.js";
import { compileShape, scopeRepeats, type CompiledShape, type ScopeRepeat } from "./compile.js";
import type { BoundRead, ChangeLimit, DriverRow, Engine, Statement, WriteOutcome } from "./engine.js";
import { postgresEngine } from "./postgres.js";
import {
  parseAggregate,
  parseCreate,
  parseDelete,
  parseUpdate,
  type AggregateQuery,
  type CreateQuery,
  type DeleteQuery,
  type ParsedInclude,
  type ParsedQuery,
  type ParsedCreate,
  type ParsedDelete,
  type ParsedRead,
  type ParsedUpdate,
  type ReadQuery,
  type UpdateQuery,
} from "./query.js";
import { priorRead, conditionArgs, returned, returningSnapshot, shown, snapshotView, type SnapshotView } from "./snapshots.js";
import { parseSchema, valueProblem, type Field, type Model, type SchemaSpec } from "./schema.js";
import { choiceFields, confinementOf, fieldUse, type IncludeGrant, type LinkAt, type RowBudget, type RowEntry } from "./scope.js";
import { includeAllowance, includeDemands, type IncludeAllowance } from "./include-grants.js";
import { checkCallCost, RowsReadLedger } from "./budgets.js";
import { orderedText, ruleFields, ruleNode, rowSatisfies, ruleValues, UnenforceableRule, type RuleNode } from "./row-rules.js";
import { viewTransform } from "./views.js";
import { withAllowance } from "./allowance.js";
import { createCursors } from "./cursors.js";
import { EXPORT_FORMATS, formatRows, type ExportFormat } from "./export.js";
import { checkParsedGrants } from "./grant-check.js";
import { policyHasher } from "./policy-hash.js";
import { readParser } from "./read-shapes.js";
import { sqliteEngine } from "./sqlite.js";
import { authorizeTrusted, checkTrusted, defined, describeRule, preparedRequest, snapshotPlainData, trustedMintsOption } from "../../kernel/internal.js";

/*
 * The confined database: the only way agentcap lets a model's query reach
 * SQL. Each call parses the structured query, works out the row scope the
 * capability confines it to, asks the kernel (which checks every link and
 * charges uses and budgets), and only then runs the statement compiled for
 * the query's shape. A denied call runs no SQL at all.
 *
 * Three caches keep the per-call work small, and none can widen anything:
 * per database, the parsed shapes of reads (./read-shapes.ts; the schema's
 * alone); per capability and query shape, the scope and the kernel request,
 * prepared by the kernel (grants are immutable, and the kernel still decides
 * every call); per SQL shape, the prepared statement.
 *
 * With an audit sink, every call writes one resource event before it
 * settles (see ../audited.ts); its result size is the rows' size as JSON.
 */

/** Bounds on what one call may do. */
export interface SqlLimits {
  /** Rows one read may return (default 1000). A larger `limit` is refused; without a limit, more matching rows is an error. */
  readonly maxRows: number;
  /** Size of one read's result, counting each string's length and 8 for any other value (default 1,000,000). */
  readonly maxResultSize: number;
  /** Rows one update or delete may change (default 1000); a call that would change more changes nothing. */
  readonly maxWriteRows: number;
  /** Values one `in` filter may list (default 100). */
  readonly maxInList: number;
  /** Distinct fields one call may return, filter on, order by, aggregate or write (default 64). */
  readonly maxFields: number;
  /** The highest complexity score one call may have (default 200; see complexityOf in ./budgets.ts). */
  readonly maxComplexity: number;
  /** Levels of includes one read may nest (default 3); each level is a further statement per batch of rows. */
  readonly maxIncludeDepth: number;
  /**
   * How long one statement may run, in milliseconds, stopped by the engine
   * itself: Postgres's statement_timeout (set for the call's transaction);
   * on SQLite, a check inside the statement every 64 rows it examines (see
   * ./sqlite-deadline.ts). Without it, statements run unbounded in time.
   */
  readonly statementTimeoutMs?: number;
}

const DEFAULT_LIMITS: SqlLimits = { maxRows: 1000, maxResultSize: 1_000_000, maxWriteRows: 1000, maxInList: 100, maxFields: 64, maxComplexity: 200, maxIncludeDepth: 3 };
const LIMIT_NAMES = [...Object.keys(DEFAULT_LIMITS), "statementTimeoutMs"];

/** The database to confine: an open better-sqlite3 database or a node-postgres pool, which stays the application's. */
export type SqlConnection = { readonly sqlite: BetterSqlite3.Database } | { readonly postgres: Pool };

export type SqlDatabaseOptions = SqlConnection & {
  readonly schema: SchemaSpec;
  readonly limits?: Partial<SqlLimits>;
  /**
   * Where every query and mutation is recorded: one resource event per call,
   * allowed or denied, written before the call settles; a failing sink fails
   * the call with AuditFailure. Without it, nothing is recorded.
   */
  readonly audit?: AuditSink;
  /**
   * The key of the keyed hash that fields granted as "hash" are shown as (at
   * least 16 bytes). Keep it stable to keep hashes comparable across
   * restarts; without it, a random key is made for this database, so hashes
   * match only within its lifetime. It must stay secret: with it, anyone can
   * test guesses against a hash.
   */
  readonly hashKey?: Uint8Array;
  /**
   * The key pagination cursors are signed with (HMAC-SHA-256, at least 16
   * bytes). Without it, a random key is made for this database, so cursors
   * stop working when it is created again. Keep it secret and apart from
   * hashKey.
   */
  readonly cursorKey?: Uint8Array;
  /**
   * Grants this database will serve (the mint's roots, say), checked against
   * the schema when it is created: GrantSchemaMismatch lists every unknown
   * model or field and every scope the schema cannot enforce.
   */
  readonly grants?: readonly Grant[];
  /**
   * The mints whose roots this resource accepts (their `Mint.id`s). A
   * capability another mint issued is denied at its first decision, before
   * anything is done. Without it, any mint's roots are accepted.
   */
  readonly mints?: readonly string[];
};

/** A row as returned: field name to value, and relation name to the rows a read included (a list, or one row or null). */
export type Row = { [field: string]: Scalar | Row | Row[] };

/** What a write did: how many rows it changed, and the `returning` fields of those rows. */
export interface WriteResult {
  readonly count: number;
  readonly rows: readonly Row[];
}

/** A read of one page: a read query without offset, with the rows per page, and the cursor of the page after the first. */
export type PageQuery = Omit<ReadQuery, "offset"> & {
  readonly limit: number;
  /** The `next` of the previous page, exactly as returned; absent for the first page. */
  readonly cursor?: string;
};

/** One page of rows, and the signed cursor of the next page (null once a page comes back short). */
export interface Page {
  readonly rows: readonly Row[];
  readonly next: string | null;
}

/** A capability that can reach operation `Op` of the db domain. */
export type DbCapability<Op extends DbOp> = Capability<{ readonly db: Op }>;

/** Structured, confined access to the application's tables. */
export interface SqlDatabase {
  /** The bounds every call is held to (frozen): tools built on the database describe the same limits to a model. */
  readonly limits: SqlLimits;
  /** Rows of one model, confined to the capability's row scope. */
  read(cap: DbCapability<"read">, query: ReadQuery): Promise<Row[]>;
  /**
   * Reads one page of rows. The cursor it returns is signed by the database
   * and bound to this capability and this exact query: it cannot be edited,
   * nor used with another capability or query. Give `orderBy` ending in a
   * unique field for pages that do not shift as rows change.
   */
  page(cap: DbCapability<"read">, query: PageQuery): Promise<Page>;
  /**
   * The rows a read returns, written as CSV (with a header of the fields,
   * text that a spreadsheet would take as a formula prefixed by ') or JSON
   * lines: the same read, decided, confined, shown and recorded as `read`.
   */
  export(cap: DbCapability<"read">, query: ReadQuery, format: ExportFormat): Promise<string>;
  /**
   * `read`, returning the rows (or throwing) with no promise made: the same
   * checks, decisions and limits, the same audit events. SQLite only, and
   * only with no audit sink or a synchronous one (see AuditSink.synchronous);
   * InvalidInput otherwise.
   */
  readSync(cap: DbCapability<"read">, query: ReadQuery): Row[];
  /** Counts, sums, averages, least and greatest values over the rows in scope, by group; a read of every field it names. */
  aggregate(cap: DbCapability<"read">, query: AggregateQuery): Promise<Row[]>;
  /** Inserts one row inside the capability's row scope. */
  create(cap: DbCapability<"create">, query: CreateQuery): Promise<WriteResult>;
  /** Changes rows in scope; a change that would move a row out of scope is denied. */
  update(cap: DbCapability<"update">, query: UpdateQuery): Promise<WriteResult>;
  /** Deletes rows in scope. */
  delete(cap: DbCapability<"delete">, query: DeleteQuery): Promise<WriteResult>;
}

/** A compiled, prepared shape with its per-parameter encoders and per-field decoders. */
interface Prepared {
  readonly shape: CompiledShape;
  readonly statement: Statement;
  readonly encoders: readonly (((v: Scalar) => unknown) | null)[];
  readonly decoders: readonly (readonly [string, (v: unknown) => Scalar])[];
}

/** What one capability needs to run one query shape. */
interface Plan {
  /** Row-scope fields in schema order; their values are slots 0 … of every statement. */
  readonly scope: readonly Field[];
  readonly scopeValues: readonly Scalar[];
  /** The capability's row rules, with the links that set them; for all but a create, their values follow the scope's. */
  readonly rules: readonly RuleNode[];
  readonly ruleLinks: readonly RowEntry[];
  /** Values every call of the plan binds first: the scope's, then the rules'. */
  readonly constants: readonly Scalar[];
  /** The most rows a read without a limit may return, or an update or delete change: the resource's limit or the chain's maxRows, whichever is less. */
  readonly maxRows: number;
  /** That bound as an update's or delete's limit, naming which of the two sets it. */
  readonly changeLimit: ChangeLimit;
  readonly scopeIndex: ReadonlyMap<Field, number>;
  /** Fields a read returns. */
  readonly select: readonly Field[];
  /** Returned fields the capability shows other than whole, with what each value becomes. */
  readonly transforms: readonly (readonly [string, (v: Scalar) => Scalar])[];
  /** The kernel request for a call that pins nothing differently from the scope. */
  readonly request: DbRequest;
  /** Links of the chain that bound the rows read of the model in total. */
  readonly rowBudgets: readonly RowBudget[];
  /** For a create: fields it must give, not null, with the links that require them (checked per call, as values differ). */
  readonly required: ReadonlyMap<string, LinkAt>;
  /** For a write: the first link that requires a reason, or null. */
  readonly requireReason: LinkAt | null;
  /** For a create: fields set from the principal, with their values and links (a value given must be the same). */
  readonly autoSet: readonly AutoSet[];
  /** For a write: the fields its audit event's snapshots hold, or null when the grant shows it none. */
  readonly snapshot: SnapshotView | null;
  readonly statementKey: string;
  /** What each link's chosen rule lets a read include. */
  readonly includes: readonly IncludeGrant[];
  /** Fields a read selects only to relate rows to included ones, removed from the rows it returns. */
  readonly hidden: readonly string[];
  prepared: Prepared | null;
  /** For a read: its filters that test equality on a field of the scope, which a call giving the scope's own value repeats. */
  readonly repeats: readonly ScopeRepeat[];
  /** For a read: its statement without those filters, for a call whose every one repeats the scope. */
  lean: Prepared | null;
  /** For a write with an audit sink: its statement returning the snapshot's fields, and the read of the rows it will change. */
  audited: AuditedWrite | null;
}

/** A field a create sets from the principal. */
interface AutoSet {
  readonly field: Field;
  readonly value: Scalar;
  readonly at: LinkAt;
  readonly source: string;
}

/** The statements of a write whose changes are recorded. */
interface AuditedWrite {
  readonly write: Prepared;
  readonly prior: Prepared | null;
}

/** What is remembered of one capability: plans by key, and per model and operation the fields that choose between a link's rules. */
interface CapabilityPlans {
  readonly plans: Map<string, Plan>;
  readonly choices: Map<Model, Map<DbOp, readonly string[]>>;
}

/** An include whose grants and confinement were decided before any SQL: its plan, and those of its own includes. */
interface AdmittedInclude {
  readonly include: ParsedInclude;
  readonly query: ParsedRead;
  readonly plan: Plan;
  readonly nested: readonly AdmittedInclude[];
}

/** Rows up to this many parent values are related in one statement; lists are padded to a power of two, so few shapes are prepared. */
const MAX_BATCH = 512;

/** Shapes remembered per capability: beyond this, a new shape is planned on every call and not kept. */
const MAX_PLANS_PER_CAPABILITY = 256;
/** Statements kept per database: beyond this, the oldest prepared statement goes. */
const MAX_STATEMENTS = 1024;

function limitsOf(given: Partial<SqlLimits> | undefined): SqlLimits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(given ?? {})) {
    if (!LIMIT_NAMES.includes(key)) throw new InvalidInput(`limits.${key} is not a limit; expected ${LIMIT_NAMES.join(", ")}`);
    const value = (given as Record<string, unknown>)[key];
    if (!Number.isSafeInteger(value) || (value as number) < 1) throw new InvalidInput(`limits.${key} must be a whole number, 1 or more`);
    (limits as Record<string, number>)[key] = value as number;
  }
  return Object.freeze(limits);
}

function keyOf(options: SqlDatabaseOptions, name: "hashKey" | "cursorKey"): Buffer {
  const key: unknown = Object.hasOwn(options, name) ? options[name] : undefined;
  if (key === undefined) return randomBytes(32);
  if (!(key instanceof Uint8Array) || key.length < 16) throw new InvalidInput(`${name} must be a Uint8Array (or Buffer) of at least 16 bytes`);
  return Buffer.from(key);
}

/** The engine for the connection given; options are read as own properties, so a polluted Object.prototype cannot supply a database. */
function engineOf(options: SqlDatabaseOptions, timeoutMs: number | null): Engine {
  const sqlite: unknown = Object.hasOwn(options, "sqlite") ? (options as { sqlite: unknown }).sqlite : undefined;
  const postgres: unknown = Object.hasOwn(options, "postgres") ? (options as { postgres: unknown }).postgres : undefined;
  const has = (value: unknown, ...methods: string[]) =>
    typeof value === "object" && value !== null && methods.every((m) => typeof (value as Record<string, unknown>)[m] === "function");
  if (sqlite !== undefined && postgres !== undefined) throw new InvalidInput("createSqlDatabase takes one database: sqlite or postgres, not both");
  if (sqlite !== undefined) {
    if (!has(sqlite, "prepare", "transaction")) throw new InvalidInput("sqlite must be an open better-sqlite3 Database");
    return sqliteEngine(sqlite as BetterSqlite3.Database, timeoutMs);
  }
  if (postgres !== undefined) {
    if (!has(postgres, "query", "connect")) throw new InvalidInput("postgres must be a node-postgres (pg) Pool");
    return postgresEngine(postgres as Pool, timeoutMs);
  }
  throw new InvalidInput("createSqlDatabase needs a database: { sqlite: <better-sqlite3 Database> } or { postgres: <pg Pool> }");
}

const sortByPosition = (fields: Iterable<Field>) => [...new Set(fields)].sort((a, b) => a.position - b.position);
const fieldNames = (fields: readonly Field[]) => fields.map((f) => f.name);

/** The scope values a call pins differently from the plan's scope, merged into it; null when it pins nothing new. */
function pinnedScope(plan: Plan, pins: readonly (readonly [Field, Scalar])[], base: Readonly<Record<string, Scalar>>): Record<string, Scalar> | null {
  let scope: Record<string, Scalar> | null = null;
  for (const [field, value] of pins) {
    const i = plan.scopeIndex.get(field);
    if (i === undefined || plan.scopeValues[i] === value) continue;
    scope ??= { ...base };
    scope[field.name] = value;
  }
  return scope;
}

/** Decodes the returned rows in place; most shapes have nothing to decode. */
function decode(rows: DriverRow[], prepared: Prepared): Record<string, Scalar>[] {
  if (prepared.decoders.length > 0) {
    for (const row of rows) for (const [name, dec] of prepared.decoders) row[name] = dec(row[name]);
  }
  return rows as Record<string, Scalar>[];
}

function finishWrite(prepared: Prepared, outcome: WriteOutcome): WriteResult {
  return { count: outcome.count, rows: decode(outcome.rows, prepared) };
}

/** The denial of a read whose rows would pass a link's total of rows read (maxRowsRead); the rows are not returned. */
function rowBudgetDenial(cap: Capability, model: string, rows: number, budget: RowBudget, left: number): Denied {
  return {
    allowed: false,
    code: "ERR_BUDGET_EXHAUSTED",
    reason: `link ${budget.link} lets its chain read ${budget.max} ${model} rows in total (maxRowsRead); ${left} are left and this read found ${rows}: nothing was returned`,
    because: `lets its chain read at most ${budget.max} ${model} rows in total`,
    capabilityId: cap.id,
    link: budget.link,
    linkId: budget.linkId,
    rule: "db.maxRowsRead",
  };
}

/** The principal's value an auto-set field takes: its id, or its one tenant (null when it has none or several). */
function principalValue(cap: Capability, source: string): string | null {
  const { principal, tenants } = cap.mint;
  if (source === "principal.user") return principal;
  return tenants.length === 1 ? (tenants[0] as string) : null;
}

/** Whether a query, as the caller gave it (anything at all), asks for includes. */
function includes(query: unknown): boolean {
  return typeof query === "object" && query !== null && Object.hasOwn(query, "include");
}

/** An included read bounded to the fields every link lets its relation show, when it names none. */
function boundedInclude(query: ParsedRead, allowance: IncludeAllowance): ParsedRead {
  if (allowance.within === null) return query;
  return { ...query, within: allowance.within, key: `${query.key}|within:${[...allowance.within].sort().join(",")}` };
}

function withTenant(request: DbRequest, scope: Readonly<Record<string, Scalar>> | null, tenant: string | undefined): DbRequest {
  if (scope === null && tenant === undefined) return request;
  return { ...request, ...(scope === null ? {} : { scope }), ...defined({ tenant }) };
}

/**
 * Creates the confined database over `sqlite` or `postgres` with the
 * application's schema. Guarantees: the SQL it runs is compiled only from the
 * schema and the query's shape, with every value bound as a parameter; every
 * statement is filtered by (or, for a create, writes) the capability's row
 * scope; nothing runs unless the kernel allowed the call.
 */
export function createSqlDatabase(options: SqlDatabaseOptions): SqlDatabase {
  const schema = parseSchema((Object.hasOwn(options, "schema") ? options.schema : undefined) as SchemaSpec);
  checkParsedGrants(schema, (Object.hasOwn(options, "grants") ? options.grants : undefined) ?? []);
  const limits = limitsOf(Object.hasOwn(options, "limits") ? options.limits : undefined);
  const engine = engineOf(options, limits.statementTimeoutMs ?? null);
  const rowsRead = new RowsReadLedger();
  const sink = auditOption(options, "createSqlDatabase");
  const trusted = trustedMintsOption(options, "createSqlDatabase");
  const hashKey = keyOf(options, "hashKey");
  const cursors = createCursors(keyOf(options, "cursorKey"));
  const policyHash = policyHasher({ schema: options.schema, limits });
  const parseReadQuery = readParser(schema, limits);
  const plans = new WeakMap<object, CapabilityPlans>();
  const statements = new Map<string, Prepared>();

  /** Refuses a call the capability confines in a way this resource cannot honour, or that its row rules forbid: recorded, and thrown as the denial. */
  const refuse = (access: Access, cap: Capability, q: ParsedQuery, at: { link: number; linkId: string }, rule: string, reason: string, because: string): never => {
    const refused: Denied = { allowed: false, code: "ERR_CAPABILITY_DENIED", reason: `link ${at.link} ${reason}`, because, capabilityId: cap.id, link: at.link, linkId: at.linkId, rule };
    const request: DbRequest = { action: `db.${q.op}`, model: q.model.name, fields: fieldNames(q.named), scope: {}, ...defined({ tenant: q.tenant }) };
    throw denialError(access.decided(request, refused) as Denied);
  };

  const makePlan = (access: Access, cap: Capability, q: ParsedQuery): Plan => {
    const { model } = q;
    const pins = new Map((q.op === "create" ? q.writes : q.pins).map(([f, v]) => [f.name, v] as const));
    const confinement = confinementOf(cap, model.name, q.op, fieldNames(q.named), pins, q.op === "read" ? includeDemands(q.includes) : []);
    const entries = confinement.scope
      .map((entry) => {
        const field = model.byName.get(entry.field);
        const problem = field === undefined ? `${model.name} has no field ${entry.field}` : valueProblem(field, entry.value);
        if (problem !== null || field === undefined) {
          // A scope the schema cannot express cannot be enforced: fail closed, naming the link.
          return refuse(
            access,
            cap,
            q,
            entry,
            "db.scope",
            `confines ${model.name} to rows where ${entry.field} = ${JSON.stringify(entry.value)}, which cannot be enforced: ${problem ?? ""}`,
            `confines ${model.name} to a row scope on ${entry.field} that cannot be enforced`,
          );
        }
        return { field, value: entry.value };
      })
      .sort((a, b) => a.field.position - b.field.position);
    // Only a create takes their values (a principal with several tenants can still read); an update may not set them.
    const autoSet = (q.op === "create" ? [...confinement.autoSet] : []).map(([name, entry]): AutoSet => {
      const field = model.byName.get(name);
      const value = principalValue(cap, entry.source);
      const problem = field === undefined ? `${model.name} has no field ${name}` : value === null ? `the principal ${cap.mint.principal} has ${cap.mint.tenants.length} tenants, not one` : valueProblem(field, value);
      if (problem !== null || field === undefined || value === null) {
        return refuse(access, cap, q, entry, "db.autoSet", `sets ${model.name}.${name} from ${entry.source}, which cannot be done: ${problem ?? ""}`, `sets ${model.name}.${name} from ${entry.source}, which cannot be done`);
      }
      return { field, value, at: entry, source: entry.source };
    });
    if (q.op === "create") {
      for (const a of autoSet) {
        const pinned = entries.find((e) => e.field === a.field);
        if (pinned === undefined) entries.push({ field: a.field, value: a.value });
        else if (pinned.value !== a.value) {
          refuse(access, cap, q, a.at, "db.autoSet", `sets ${model.name}.${a.field.name} from ${a.source}, and a row scope pins it to another value`, `sets ${model.name}.${a.field.name} from ${a.source}`);
        }
      }
      entries.sort((a, b) => a.field.position - b.field.position);
    }
    if (q.op === "update") {
      const fixed = q.set.find((f) => confinement.autoSet.has(f.name));
      const entry = fixed === undefined ? undefined : confinement.autoSet.get(fixed.name);
      if (fixed !== undefined && entry !== undefined) {
        refuse(access, cap, q, entry, "db.autoSet", `sets ${model.name}.${fixed.name} from ${entry.source} on create: an update may not set it`, `sets ${model.name}.${fixed.name} from ${entry.source}`);
      }
    }
    const rules = confinement.rows.map((entry) => {
      try {
        return ruleNode(model, entry.rule);
      } catch (e) {
        if (!(e instanceof UnenforceableRule)) throw e;
        return refuse(access, cap, q, entry, "db.rows", `confines ${model.name} by a row rule that cannot be enforced: ${e.message}`, `confines ${model.name} by a row rule that cannot be enforced`);
      }
    });
    if (q.op === "create") {
      confinement.rows.forEach((entry, i) => {
        const text = orderedText(rules[i] as RuleNode);
        if (text !== null) {
          refuse(
            access,
            cap,
            q,
            entry,
            "db.rows",
            `confines ${model.name} by a row rule ordering the text field ${text.name} (<, <=, >, >=), which depends on the database's collation, so a new row cannot be checked against it; to let creates through, its rules on text must use eq, ne, in, startsWith or contains`,
            `confines ${model.name} by a row rule ordering the text field ${text.name}, which a create cannot be checked against`,
          );
        }
      });
    }
    const guard = confinement.requireFilter;
    if (guard !== null && q.op !== "create" && q.conditions.length === 0 && (q.op !== "read" || !q.limitGiven)) {
      const needs = q.op === "read" ? "a filter (where) or a limit" : "a filter (where) naming the rows it changes";
      refuse(access, cap, q, guard, "db.requireFilter", `requires every ${q.op} of ${model.name} to give ${needs}`, `requires every ${q.op} of ${model.name} to give ${needs}`);
    }
    if (q.op === "update") {
      const fixed = q.set.find((f) => confinement.immutable.has(f.name));
      if (fixed !== undefined) {
        const settable = q.model.fields.filter((f) => !confinement.immutable.has(f.name) && (confinement.reachable === null || confinement.reachable.has(f.name)) && !confinement.actions.has(f.name));
        refuse(
          access,
          cap,
          q,
          confinement.immutable.get(fixed.name) as LinkAt,
          "db.immutable",
          `makes ${model.name}.${fixed.name} immutable: an update may not set it (it may set ${fieldNames(settable).join(", ") || "no field"})`,
          `makes ${model.name}.${fixed.name} immutable`,
        );
      }
    }
    if (q.op === "update") {
      // The rows an update leaves must satisfy the rules too; changing a field a rule names could move them out, so it is refused.
      confinement.rows.forEach((entry, i) => {
        const named = ruleFields(rules[i] as RuleNode);
        const moved = q.set.find((f) => named.has(f));
        if (moved !== undefined) {
          refuse(access, cap, q, entry, "db.rows", `confines ${model.name} by a row rule on ${moved.name}, which an update may not change`, `confines ${model.name} by a row rule on ${moved.name}`);
        }
      });
    }
    const scopeValues = entries.map((e) => e.value);
    const scope = entries.map((e) => e.field);
    let select: readonly Field[] = [];
    let use = { fields: fieldNames(q.named), views: {} as Record<string, FieldView> };
    if (q.op === "read" && q.aggregates !== null) {
      // Groups and aggregated fields are used whole: nothing is returned in a view.
      select = q.select ?? [];
    } else if (q.op === "read") {
      const { reachable, actions } = confinement;
      const within = q.within;
      const visible = model.fields.filter((f) => (reachable === null || reachable.has(f.name)) && actions.get(f.name) !== "deny" && (within === undefined || within.has(f.name)));
      // With nothing visible, ask for everything and let the kernel's denial name a field the capability lacks.
      select = q.select ?? (visible.length === 0 ? model.fields : visible);
      use = fieldUse(confinement, fieldNames(select), fieldNames(q.used));
    }
    checkCallCost(q, q.op === "read" ? select : q.op === "delete" ? [] : q.returning, limits.maxFields, limits.maxComplexity);
    // Fields that relate rows to included ones are read too (whole: the request names them in use.fields), and returned only when asked for.
    const hidden = q.op === "read" ? (q.links ?? []).filter((f) => !select.includes(f)) : [];
    if (hidden.length > 0) select = sortByPosition([...select, ...hidden]);
    const viewed = Object.entries(use.views);
    const chainMax = confinement.maxRows;
    const resourceMax = q.op === "read" ? limits.maxRows : limits.maxWriteRows;
    // The limit the request names for links with maxRows: the caller's own, a create's one row, or the chain's.
    const limit = chainMax === null ? undefined : q.op === "read" && q.limitGiven ? q.limit : q.op === "create" ? 1 : chainMax;
    const changeLimit: ChangeLimit = chainMax !== null && chainMax < resourceMax ? { max: chainMax, name: "maxRows" } : { max: resourceMax, name: q.op === "read" ? "maxRows" : "maxWriteRows" };
    // Prepared by the kernel (a frozen copy, validated once): every call of the plan that pins nothing new asks exactly this.
    const request = preparedRequest<DbRequest>({
      action: `db.${q.op}` as const,
      model: model.name,
      fields: fieldNames(sortByPosition(use.fields.map((f) => model.byName.get(f) as Field))),
      scope: Object.fromEntries(entries.map((e) => [e.field.name, e.value])),
      ...(viewed.length > 0 ? { views: use.views } : {}),
      ...(rules.length > 0 ? { rows: confinement.rows.map((e) => e.rule) } : {}),
      ...defined({ limit }),
    });
    return {
      scope,
      scopeValues,
      rules,
      ruleLinks: confinement.rows,
      maxRows: changeLimit.max,
      changeLimit,
      constants: q.op === "create" ? scopeValues : [...scopeValues, ...rules.flatMap((r) => ruleValues(r))],
      scopeIndex: new Map(scope.map((f, i) => [f, i])),
      select,
      transforms: viewed.map(([f, view]) => [f, viewTransform(view, hashKey)] as const),
      request,
      rowBudgets: confinement.rowBudgets,
      required: confinement.required,
      requireReason: q.op === "read" ? null : confinement.requireReason,
      autoSet: q.op === "create" ? autoSet : [],
      snapshot: q.op === "read" ? null : snapshotView(model, confinement, hashKey),
      statementKey: `${q.key}|${fieldNames(select).join(",")}|${fieldNames(scope).join(",")}|${q.op === "create" ? "" : JSON.stringify(request.rows ?? [])}`,
      includes: confinement.includes,
      hidden: fieldNames(hidden),
      prepared: null,
      repeats: q.op === "read" ? scopeRepeats(q.conditions, scope) : [],
      lean: null,
      audited: null,
    };
  };

  /**
   * A plan is remembered by the query's shape and, where a link grants the
   * model by several rules, by the values its filters (a create: its values)
   * pin on the fields that choose between them.
   */
  const planKey = (cap: Capability, perCap: CapabilityPlans, q: ParsedQuery): string => {
    let byOp = perCap.choices.get(q.model);
    if (byOp === undefined) perCap.choices.set(q.model, (byOp = new Map<DbOp, readonly string[]>()));
    let fields = byOp.get(q.op);
    if (fields === undefined) byOp.set(q.op, (fields = choiceFields(cap.lineage, q.model.name, q.op)));
    if (fields.length === 0) return q.key;
    const pins = q.op === "create" ? q.writes : q.pins;
    return `${q.key}|${JSON.stringify(fields.map((name) => pins.find(([f]) => f.name === name)?.[1]))}`;
  };

  const planFor = (access: Access, cap: Capability, q: ParsedQuery): Plan => {
    let perCap = plans.get(cap);
    if (perCap === undefined) {
      // Nothing of a look-alike is read, its lineage included.
      if (!isCapability(cap)) throw new NotACapability("expected a capability issued by this kernel; look-alike objects carry no authority");
      plans.set(cap, (perCap = { plans: new Map<string, Plan>(), choices: new Map<Model, Map<DbOp, readonly string[]>>() }));
    }
    const key = planKey(cap, perCap, q);
    const known = perCap.plans.get(key);
    if (known !== undefined) return known;
    const plan = makePlan(access, cap, q);
    if (perCap.plans.size < MAX_PLANS_PER_CAPABILITY) perCap.plans.set(key, plan);
    return plan;
  };

  /** The prepared statement of `q` under `plan`, from the cache by `key` or compiled now; `omit`: conditions left out (see compileShape). */
  const prepareAs = (key: string, plan: Plan, q: ParsedQuery, select: readonly Field[], omit?: ReadonlySet<number>): Prepared => {
    const cached = statements.get(key);
    if (cached !== undefined) return cached;
    const rules = q.op === "create" ? [] : plan.rules;
    const shape = compileShape(engine.dialect, q, plan.scope, rules, plan.constants.length - plan.scopeValues.length, select, engine.guard, omit);
    const prepared: Prepared = {
      shape,
      statement: engine.prepare(shape.sql, q.op === "read" && q.limit === 1),
      encoders: shape.params.map((slot) => (slot.field === null ? null : engine.encoder(slot.field.type))),
      decoders: shape.output.flatMap((f) => {
        const decode = engine.decoder(f.type);
        return decode === null ? [] : [[f.name, decode] as const];
      }),
    };
    if (statements.size >= MAX_STATEMENTS) statements.delete(statements.keys().next().value as string);
    statements.set(key, prepared);
    return prepared;
  };

  const prepare = (plan: Plan, q: ParsedQuery): Prepared => (plan.prepared = prepareAs(plan.statementKey, plan, q, plan.select));

  /**
   * The statement a call of `plan` with `args` runs. A read filtering a scope
   * field by the value the scope already requires (a capability narrowed to
   * one row, asked for that row) runs the statement without that filter:
   * the same rows, one term fewer for the database to test. Any other value
   * (Object.is, so 0 and -0 differ) runs the statement with every filter.
   */
  const statementFor = (plan: Plan, q: ParsedQuery, args: readonly Scalar[]): Prepared => {
    const { repeats } = plan;
    let same = repeats.length > 0;
    for (let i = 0; same && i < repeats.length; i++) {
      const r = repeats[i] as ScopeRepeat;
      same = Object.is(args[r.arg], plan.scopeValues[r.scope]);
    }
    if (!same) return plan.prepared ?? prepare(plan, q);
    if (plan.lean !== null) return plan.lean;
    const omit = new Set(repeats.map((r) => r.condition));
    return (plan.lean = prepareAs(`${plan.statementKey}|omit:${[...omit].join(",")}`, plan, q, plan.select, omit));
  };

  /** The statements of a write whose changes go to the audit log: it returns the snapshot's fields too, and an update or delete reads its rows first. */
  const prepareAudited = (plan: Plan, q: ParsedCreate | ParsedUpdate | ParsedDelete, view: SnapshotView): AuditedWrite => {
    const fields = view.fields.map((f) => f.name).join(",");
    const write = q.op === "delete" ? (plan.prepared ?? prepare(plan, q)) : prepareAs(`${plan.statementKey}|returning:${fields}`, plan, returningSnapshot(q, view), []);
    const prior = q.op === "create" ? null : prepareAs(`${plan.statementKey}|before:${fields}`, plan, priorRead(q, view, plan.changeLimit.max + 1), view.fields);
    return (plan.audited = { write, prior });
  };

  /** The values `prepared` binds: the plan's constants, then `args`, each encoded for its field. */
  const bind = (plan: Plan, prepared: Prepared, args: readonly Scalar[]): unknown[] => {
    const slots = prepared.shape.params;
    const params = new Array<unknown>(slots.length);
    const offset = plan.constants.length;
    for (let i = 0; i < slots.length; i++) {
      const at = (slots[i] as { index: number }).index;
      const value = (at < offset ? plan.constants[at] : args[at - offset]) as Scalar;
      const encode = prepared.encoders[i];
      params[i] = encode == null ? value : encode(value);
    }
    return params;
  };

  /**
   * Decides the includes of a read before anything runs: the parent's links
   * must allow each relation (see ./include-grants.ts), and each included
   * read is planned and checked by the kernel as a read of its own model
   * (charging nothing: the call is charged once, for its own request).
   */
  const admitIncludes = (access: Access, cap: Capability, parent: ParsedRead, grants: readonly IncludeGrant[]): AdmittedInclude[] =>
    (parent.includes ?? []).map((include) => {
      const allowance = includeAllowance(parent.model.name, grants, include);
      if (!("within" in allowance)) return refuse(access, cap, parent, allowance.at, "db.include", allowance.reason, allowance.because);
      const query = boundedInclude(include.query, allowance);
      const plan = planFor(access, cap, query);
      const request = withTenant(plan.request, pinnedScope(plan, query.pins, plan.request.scope), query.tenant);
      const decision = access.decided(request, withAllowance(checkTrusted(trusted, cap, request), cap, query.model, "read"));
      if (!decision.allowed) throw denialError(decision);
      return { include, query, plan, nested: admitIncludes(access, cap, query, plan.includes) };
    });

  /**
   * Authorizes the call, reporting each decision to `access` (throwing the
   * kernel's typed denial), and returns its prepared statement and bound
   * parameters. A write's query, as given, is the decision's arguments: an
   * approval of a write holds for exactly that write (the same filters, the
   * same values), and approval rules' `input` patterns match its fields.
   */
  const admit = (access: Access, cap: Capability, q: ParsedQuery, args?: unknown): { plan: Plan; prepared: Prepared; params: unknown[]; included: readonly AdmittedInclude[] } => {
    const options = args === undefined ? undefined : { args };
    if (q.reason !== undefined) access.explain(q.reason);
    const plan = planFor(access, cap, q);
    if (plan.requireReason !== null && q.reason === undefined) {
      refuse(
        access,
        cap,
        q,
        plan.requireReason,
        "db.requireReason",
        `requires a reason on every ${q.op} of ${q.model.name}: give query.reason, a sentence saying why (it is recorded in the audit log)`,
        `requires a reason on every ${q.op} of ${q.model.name}`,
      );
    }
    for (const a of plan.autoSet) {
      const given = q.writes.find(([f]) => f === a.field);
      if (given !== undefined && given[1] !== a.value) {
        refuse(access, cap, q, a.at, "db.autoSet", `sets ${q.model.name}.${a.field.name} from ${a.source} on every create: leave it out, or give the principal's own value`, `sets ${q.model.name}.${a.field.name} from ${a.source}`);
      }
    }
    if (q.op === "create" && plan.required.size > 0) {
      for (const [name, at] of plan.required) {
        const given = q.writes.find(([f]) => f.name === name);
        // A field of the row scope is set by the scope when the create leaves it out.
        if (given === undefined ? !plan.scope.some((f) => f.name === name) : given[1] === null) {
          refuse(access, cap, q, at, "db.required", `requires ${q.model.name}.${name} on every create: give it a value (not null)`, `requires ${q.model.name}.${name} on every create`);
        }
      }
    }
    if (q.op === "create" && plan.rules.length > 0) {
      // A new row must satisfy every rule, with the scope's values for the fields it leaves to the scope.
      const row = new Map<Field, Scalar>(q.writes);
      plan.scope.forEach((f, i) => {
        if (!row.has(f)) row.set(f, plan.scopeValues[i] as Scalar);
      });
      plan.rules.forEach((rule, i) => {
        const verdict = rowSatisfies(rule, row);
        if (verdict === true) return;
        const entry = plan.ruleLinks[i] as RowEntry;
        const text = describeRule(entry.rule);
        refuse(
          access,
          cap,
          q,
          entry,
          "db.rows",
          verdict === null ? `confines ${q.model.name} to rows where ${text}: give every field it names` : `confines ${q.model.name} to rows where ${text}, and the new row is not one`,
          `confines ${q.model.name} to rows where ${text}`,
        );
      });
    }
    const base = plan.request.scope;
    // A create's scope is the new row's; other calls are confined by the plan's scope and whatever their filters pin.
    const scope = pinnedScope(plan, q.op === "create" ? q.writes : q.pins, base);
    const request = withTenant(plan.request, scope, q.tenant);
    // The call's own request is the event's, though an update's after-check is decided first.
    access.about(request);
    if (q.op === "update") {
      // The rows an update leaves behind must be in scope too: check the scope its new values give them, charging nothing.
      const after = pinnedScope(plan, q.writes, scope ?? base);
      if (after !== null) {
        const moved = withTenant(plan.request, after, q.tenant);
        const decision = access.decided(moved, withAllowance(checkTrusted(trusted, cap, moved, options), cap, q.model, q.op));
        if (!decision.allowed) throw denialError(decision);
      }
    }
    let included: AdmittedInclude[] = [];
    if (q.op === "read" && q.includes !== undefined) {
      // The read itself is checked first (charging nothing), so a read its capability denies is refused as such, whatever it includes.
      const own = access.decided(request, withAllowance(checkTrusted(trusted, cap, request), cap, q.model, q.op));
      if (!own.allowed) throw denialError(own);
      included = admitIncludes(access, cap, q, plan.includes);
    }
    const decision = access.decided(request, withAllowance(authorizeTrusted(trusted, cap, request, options), cap, q.model, q.op));
    if (!decision.allowed) throw denialError(decision);
    const prepared = statementFor(plan, q, q.args);
    return { plan, prepared, params: bind(plan, prepared, q.args), included };
  };

  /** Checks a read's result against the limits and the chain's totals (charging them), decodes it, and shows each field as the capability allows. */
  const finishRead = (access: Access, cap: Capability, q: ParsedRead, plan: Plan, prepared: Prepared, rows: DriverRow[], spent?: { size: number }, through?: string): Row[] => {
    if (!q.limitGiven && rows.length > plan.maxRows) {
      throw new LimitExceeded(
        through !== undefined
          ? `more than ${plan.maxRows} ${q.model.name} rows are included through ${through} (maxRows); filter the include (where) or read fewer rows`
          : q.aggregates === null
            ? `more than ${plan.maxRows} ${q.model.name} rows match (maxRows); narrow the filter, or page with limit and offset`
            : `more than ${plan.maxRows} groups of ${q.model.name} (maxRows); group by fewer fields or narrow the filter`,
        "maxRows",
      );
    }
    let size = spent?.size ?? 0;
    for (const row of rows) {
      for (const f of prepared.shape.output) {
        const v = row[f.name];
        size += typeof v === "string" ? v.length : 8;
      }
    }
    if (spent !== undefined) spent.size = size;
    if (size > limits.maxResultSize) {
      throw new LimitExceeded(`the result is larger than ${limits.maxResultSize} (maxResultSize); ask for fewer fields or rows${through === undefined ? "" : ", or include fewer"}`, "maxResultSize");
    }
    if (plan.rowBudgets.length > 0) {
      const short = rowsRead.charge(q.model.name, plan.rowBudgets, rows.length);
      if (short !== null) throw denialError(access.decided(plan.request, rowBudgetDenial(cap, q.model.name, rows.length, short.budget, short.left)) as Denied);
    }
    const decoded = decode(rows, prepared);
    if (plan.transforms.length > 0) {
      for (const row of decoded) for (const [name, show] of plan.transforms) row[name] = show(row[name] as Scalar);
    }
    return decoded;
  };

  /** Runs an admitted write whose changes are recorded: the rows it changes, before and after, as `view` shows them, told to `access`. */
  const recordedWrite = async (access: Access, plan: Plan, q: ParsedCreate | ParsedUpdate | ParsedDelete, view: SnapshotView): Promise<WriteResult> => {
    const { write: prepared, prior } = plan.audited ?? prepareAudited(plan, q, view);
    const before: BoundRead | null = prior === null || q.op === "create" ? null : { statement: prior.statement, params: bind(plan, prior, conditionArgs(q)) };
    const outcome = await prepared.statement.write(bind(plan, prepared, q.args), q.op === "create" ? null : plan.changeLimit, before);
    const rows = decode(outcome.rows, prepared);
    const priorRows = prior === null ? [] : decode(outcome.before ?? [], prior);
    access.changed({ before: shown(priorRows, view), after: q.op === "delete" ? [] : shown(rows, view) });
    return { count: outcome.count, rows: q.op === "delete" || q.returning.length === 0 ? [] : returned(rows, q.returning) };
  };

  const write = (cap: Capability, query: unknown, parse: (query: unknown) => ParsedCreate | ParsedUpdate | ParsedDelete): Promise<WriteResult> =>
    audited(
      sink,
      cap,
      async (access) => {
        // One copy, read once: what is parsed and run is what an approval was bound to. A part given as undefined is absent, as the parser reads it.
        const given = typeof query === "object" && query !== null && !Array.isArray(query) ? Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)) : query;
        const args = snapshotPlainData(given, "query");
        const q = parse(args);
        const { plan, prepared, params } = admit(access, cap, q, args);
        await access.proceed();
        if (sink !== undefined && plan.snapshot !== null) return recordedWrite(access, plan, q, plan.snapshot);
        const outcome = prepared.statement.write(params, q.op === "create" ? null : plan.changeLimit);
        return outcome instanceof Promise ? outcome.then((o) => finishWrite(prepared, o)) : finishWrite(prepared, outcome);
      },
      jsonBytes,
      policyHash,
    );

  /**
   * Adds to each of `parents` the rows each admitted include relates to it,
   * read in batches of parent values (`to in (...)`), each batch a
   * statement confined as a read of the included model; then the fields
   * read only to relate rows are removed from the included rows.
   */
  const includeRows = async (access: Access, cap: Capability, parents: Row[], admitted: readonly AdmittedInclude[], spent: { size: number }): Promise<void> => {
    for (const { include, query, plan, nested } of admitted) {
      const { relation } = include;
      const values = [...new Set(parents.map((r) => r[relation.from.name]))].filter((v): v is Exclude<Scalar, null> => v !== null && v !== undefined && typeof v !== "object");
      const raw: DriverRow[] = [];
      let prepared: Prepared | null = null;
      for (let i = 0; i < values.length; i += MAX_BATCH) {
        const chunk = values.slice(i, i + MAX_BATCH);
        let arity = 1;
        while (arity < chunk.length) arity *= 2;
        // Repeating a value changes no answer of `in`, and keeps the shapes prepared to one per power of two.
        const padded: Scalar[] = [...chunk];
        while (padded.length < arity) padded.push(chunk[chunk.length - 1] as Scalar);
        const batch: ParsedRead = { ...query, conditions: [{ field: relation.to, op: "in", arity }, ...query.conditions], args: [...padded, ...query.args] };
        prepared = prepareAs(`${plan.statementKey}|in${arity}`, plan, batch, plan.select);
        const rows = prepared.statement.read(bind(plan, prepared, batch.args));
        for (const row of rows instanceof Promise ? await rows : rows) raw.push(row);
      }
      const rows = prepared === null ? [] : finishRead(access, cap, query, plan, prepared, raw, spent, `${include.relation.name} of ${relation.from.name === relation.to.name ? relation.model.name : query.model.name}`);
      if (nested.length > 0) await includeRows(access, cap, rows, nested, spent);
      const related = new Map<unknown, Row[]>();
      for (const row of rows) {
        const key = row[relation.to.name];
        const list = related.get(key);
        if (list === undefined) related.set(key, [row]);
        else list.push(row);
      }
      for (const row of rows) for (const name of plan.hidden) Reflect.deleteProperty(row, name);
      for (const parent of parents) {
        const found = related.get(parent[relation.from.name]) ?? [];
        parent[relation.name] = relation.many ? [...found] : (found[0] ?? null);
      }
    }
  };

  /** A read's rows with their includes, and without the fields read only to relate them. */
  const withIncludes = async (access: Access, cap: Capability, plan: Plan, rows: Row[], admitted: readonly AdmittedInclude[], spent: { size: number }): Promise<Row[]> => {
    await includeRows(access, cap, rows, admitted, spent);
    for (const row of rows) for (const name of plan.hidden) Reflect.deleteProperty(row, name);
    return rows;
  };

  const rowsOf = (cap: Capability, parse: () => ParsedRead): Promise<Row[]> =>
    audited(
      sink,
      cap,
      async (access) => {
        const q = parse();
        const { plan, prepared, params, included } = admit(access, cap, q);
        await access.proceed();
        const rows = prepared.statement.read(params);
        if (included.length > 0) {
          const spent = { size: 0 };
          return withIncludes(access, cap, plan, finishRead(access, cap, q, plan, prepared, await rows, spent), included, spent);
        }
        return rows instanceof Promise ? rows.then((r) => finishRead(access, cap, q, plan, prepared, r)) : finishRead(access, cap, q, plan, prepared, rows);
      },
      jsonBytes,
      policyHash,
    );
  const read = (cap: DbCapability<"read">, query: ReadQuery): Promise<Row[]> => rowsOf(cap, () => parseReadQuery(query));

  // The callbacks below are written inline, not bound to names per call: a named closure per call is measurable here.
  return Object.freeze({
    limits,
    read,
    page: async (cap: DbCapability<"read">, query: PageQuery): Promise<Page> => {
      if (!isCapability(cap)) throw new NotACapability("expected a capability issued by this kernel; look-alike objects carry no authority");
      // One copy, read once: the cursor is checked against exactly the query that is then run.
      const copy: unknown = snapshotPlainData(query, "query");
      if (typeof copy !== "object" || copy === null || Array.isArray(copy)) throw new InvalidInput("query must be an object");
      const q = copy as Record<string, unknown>;
      if (Object.hasOwn(q, "offset")) throw new InvalidInput("query.offset is not part of a page query: pages move by their cursor");
      const limit = q.limit;
      if (!Number.isSafeInteger(limit)) throw new InvalidInput("query.limit is required in a page query: the rows per page, a whole number");
      const offset = Object.hasOwn(q, "cursor") ? cursors.open(q.cursor, cap.id, q) : 0;
      const rest: Record<string, unknown> = { ...q, ...(offset > 0 ? { offset } : {}) };
      delete rest.cursor;
      const rows = await read(cap, rest as unknown as ReadQuery);
      return { rows, next: rows.length === limit ? cursors.sign(cap.id, q, offset + rows.length) : null };
    },
    readSync: (cap: DbCapability<"read">, query: ReadQuery): Row[] => {
      if (!engine.synchronous) throw new InvalidInput("readSync needs a SQLite database, whose statements run synchronously; use read");
      if (includes(query)) throw new InvalidInput("readSync reads no includes; use read for a query with include");
      return auditedSync(
        sink,
        cap,
        (access) => {
          const q = parseReadQuery(query);
          const { plan, prepared, params } = admit(access, cap, q);
          access.proceedSync();
          return finishRead(access, cap, q, plan, prepared, prepared.statement.read(params) as DriverRow[]);
        },
        jsonBytes,
        policyHash,
      );
    },
    export: async (cap: DbCapability<"read">, query: ReadQuery, format: ExportFormat): Promise<string> => {
      if (!EXPORT_FORMATS.includes(format)) throw new InvalidInput(`format must be one of ${EXPORT_FORMATS.join(", ")}`);
      const rows = await read(cap, query);
      // The header is the fields the read returned; with no rows, the fields it asked for.
      const first = rows[0];
      const asked = (query as { fields?: unknown }).fields;
      const columns = first !== undefined ? Object.keys(first) : Array.isArray(asked) ? asked.filter((f): f is string => typeof f === "string") : [];
      return formatRows(rows, columns, format);
    },
    aggregate: (cap: DbCapability<"read">, query: AggregateQuery): Promise<Row[]> => rowsOf(cap, () => parseAggregate(schema, query, limits)),
    create: (cap: DbCapability<"create">, query: CreateQuery) => write(cap, query, (args) => parseCreate(schema, args)),
    update: (cap: DbCapability<"update">, query: UpdateQuery) => write(cap, query, (args) => parseUpdate(schema, args, limits)),
    delete: (cap: DbCapability<"delete">, query: DeleteQuery) => write(cap, query, (args) => parseDelete(schema, args, limits)),
  });
}
