import { z } from "zod";
import { MAX_INCLUDE_DEPTH, type Capability, type DbOp, type DbRequest, type Scalar } from "../../kernel/index.js";
import type { AggregateSpec, CreateQuery, DeleteQuery, OrderBy, ReadQuery, Row, SchemaSpec, SqlDatabase, UpdateQuery, Where, WriteResult } from "../../resources/sql/index.js";
import { confinementOfLineage, parseSchema, readRequests } from "../../resources/sql/internal.js";
import { bindArguments, defineBuiltinTool, type NeedsContext, type Tool } from "../define.js";
import { defined } from "../../kernel/internal.js";

/*
 * Structured query and mutation tools over the confined SQL resource. The
 * model sends structured queries only, never SQL. Each tool's needs are the
 * request the resource will make: the fields the query names, and the row
 * scope the caller's capability confines the model to, pinned further by
 * the query's own equality filters (or, for a create, its values). A pin
 * that leaves the caller's scope, such as another tenant's id, is denied
 * before the handler runs.
 */

const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const filterOps = z.strictObject({
  eq: scalar.optional(),
  ne: scalar.optional(),
  lt: scalar.optional(),
  lte: scalar.optional(),
  gt: scalar.optional(),
  gte: scalar.optional(),
  in: z.array(scalar).optional(),
  startsWith: z.string().optional(),
  contains: z.string().optional(),
});
const where = z
  .record(z.string(), z.union([scalar, filterOps]))
  .optional()
  .describe("Filters by field, all ANDed: a bare value means equality, or an object of operators (eq, ne, lt, lte, gt, gte, in, startsWith, contains).");
const fieldList = z.array(z.string()).min(1);
const reason = z.string().min(1).max(1000).optional().describe("Why this change is made, in a sentence; recorded in the audit log, and required where the policy says so.");

const orderBy = z.array(z.object({ field: z.string(), direction: z.enum(["asc", "desc"]).optional() })).optional();

/** One relation's rows to include, as the query tool takes it. */
interface IncludeInput {
  readonly fields: string[];
  readonly where?: Record<string, unknown> | undefined;
  readonly orderBy?: { field: string; direction?: "asc" | "desc" | undefined }[] | undefined;
  readonly include?: Record<string, IncludeInput> | undefined;
}

/** Includes nested at most `depth` levels: written out level by level, so the JSON schema a model sees needs no references. */
function includeInput(depth: number): z.ZodType<Record<string, IncludeInput>> {
  // Strict: an include nested deeper than allowed is refused, not dropped unseen.
  const level = z.strictObject({
    fields: fieldList.describe("Fields of the related model to return."),
    where,
    orderBy,
    ...(depth > 1 ? { include: includeInput(depth - 1).optional() } : {}),
  });
  return z
    .record(z.string(), level)
    .describe(
      `Related rows to return with each row, by relation name (see the models' relations): a list for a relation to many rows, one row or null for a relation to one. Nested at most ${depth} more level${depth === 1 ? "" : "s"}; the capability decides which relations and fields may be included.`,
    ) as z.ZodType<Record<string, IncludeInput>>;
}

function inputs(models: [string, ...string[]], includeDepth: number) {
  const model = z.enum(models);
  const read = z.object({
    model,
    fields: fieldList.describe("Fields to return."),
    where,
    orderBy,
    limit: z.number().int().positive().optional(),
    offset: z.number().int().nonnegative().optional(),
  });
  const withInclude = read.extend({ include: includeInput(Math.max(includeDepth, 1)).optional() });
  return {
    // A schema whose models relate to none offers no include at all.
    query: includeDepth > 0 ? withInclude : (read as unknown as typeof withInclude),
    create: z.object({ model, values: z.record(z.string(), scalar), returning: fieldList.optional(), reason }),
    update: z.object({ model, set: z.record(z.string(), scalar), where, returning: fieldList.optional(), reason }),
    delete: z.object({ model, where, reason }),
    aggregate: z.object({
      model,
      aggregates: z
        .record(z.string(), z.object({ fn: z.enum(["count", "sum", "avg", "min", "max"]), field: z.string().optional() }))
        .describe("Results by name: count (of rows, or of a field's non-null values), sum, avg, min or max of a field."),
      where,
      groupBy: fieldList.optional().describe("Fields to group by: one result row per group."),
    }),
  };
}

type Inputs = ReturnType<typeof inputs>;

/** The input of the query tool: a read of one model, and the related rows to include with each row. */
export type QueryToolInput = z.input<Inputs["query"]>;

/** The database tools. */
export interface DatabaseTools {
  readonly query: Tool<QueryToolInput, Row[]>;
  readonly create: Tool<z.input<Inputs["create"]>, WriteResult>;
  readonly update: Tool<z.input<Inputs["update"]>, WriteResult>;
  readonly delete: Tool<z.input<Inputs["delete"]>, WriteResult>;
  readonly aggregate: Tool<z.input<Inputs["aggregate"]>, Row[]>;
}

/** Options of the database tools. */
export interface DatabaseToolOptions {
  /** Prefix of the tool names (default "db_": db_query, db_create, db_update, db_delete, db_aggregate). */
  readonly prefix?: string;
}

/**
 * Query and mutation tools over `db`, described to the model from `schema`
 * (the same schema the database was created with). Give a capability only
 * the tools it should see: a read-only agent's grant names `db_query` alone.
 */
export function databaseTools(db: SqlDatabase, schema: SchemaSpec, options: DatabaseToolOptions = {}): DatabaseTools {
  const names = Object.keys(schema);
  const [first, ...rest] = names;
  const prefix = options.prefix ?? "db_";
  const parsed = parseSchema(schema);
  // Include levels as the database allows them, and only where a model relates to another.
  const related = [...parsed.models.values()].some((m) => m.relations.size > 0);
  const input = inputs([first ?? "", ...rest], related ? Math.min(db.limits.maxIncludeDepth, MAX_INCLUDE_DEPTH) : 0);
  const relationsOf = (m: string) => [...(parsed.models.get(m)?.relations.entries() ?? [])].map(([name, r]) => `${name} → ${r.model.name}${r.many ? " (many)" : ""}`);
  const catalog = names
    .map((m) => {
      const relations = relationsOf(m);
      return `${m} (${Object.keys(schema[m]?.fields ?? {}).join(", ")}${relations.length > 0 ? `; relations: ${relations.join(", ")}` : ""})`;
    })
    .join("; ");
  /** The read the query tool makes: its needs are worked out from, and its handler runs, this same query. */
  const readQuery = (q: QueryToolInput, tenant: string | null): ReadQuery => ({
    model: q.model,
    fields: q.fields,
    ...defined({
      where: q.where as Where | undefined,
      orderBy: q.orderBy as readonly OrderBy[] | undefined,
      limit: q.limit,
      offset: q.offset,
      include: q.include as ReadQuery["include"],
      tenant: tenant ?? undefined,
    }),
  });
  // The handler's capability reaches what its needs named; the resource's types ask for the db reach explicitly.
  const cap = (c: Capability) => c as Capability<{ readonly db: DbOp }>;

  return Object.freeze({
    query: defineBuiltinTool(
      {
        name: `${prefix}query`,
        description: `Read rows of one model, and optionally related rows with each (include). Models: ${catalog}.`,
        input: input.query,
        // The read and each included read, confined as the resource will confine them; returned fields the caller's chain shows
        // masked, hashed or redacted are needed in that view, and the read names the relations it includes.
        needs: (q, ctx) => readRequests(parsed, ctx.lineage, readQuery(q, null)),
      },
      (q, c, ctx) => db.read(cap(c), readQuery(q, ctx.tenant)),
    ),
    // Each write's needs are bound to the exact query its handler runs: an approval of the call approves that write and no other.
    create: defineBuiltinTool(
      {
        name: `${prefix}create`,
        description: `Insert one row. Models: ${catalog}.`,
        input: input.create,
        needs: (q, ctx) => [bindArguments(need("create", q.model, [...Object.keys(q.values), ...(q.returning ?? [])], q.values, ctx), createQuery(q, ctx.tenant))],
      },
      (q, c, ctx) => db.create(cap(c), createQuery(q, ctx.tenant)),
    ),
    update: defineBuiltinTool(
      {
        name: `${prefix}update`,
        description: `Change the rows that match a filter. Models: ${catalog}.`,
        input: input.update,
        needs: (q, ctx) => {
          const fields = [...whereFields(q.where), ...Object.keys(q.set), ...(q.returning ?? [])];
          const before = need("update", q.model, fields, pins(q.where), ctx);
          // The rows an update leaves behind are checked too: a change to a scope field needs the scope it moves the rows into.
          const after = { ...before, scope: { ...before.scope, ...pick(q.set, Object.keys(before.scope)) } };
          const query = updateQuery(q, ctx.tenant);
          return (sameScope(before, after) ? [before] : [before, after]).map((r) => bindArguments(r, query));
        },
      },
      (q, c, ctx) => db.update(cap(c), updateQuery(q, ctx.tenant)),
    ),
    aggregate: defineBuiltinTool(
      {
        name: `${prefix}aggregate`,
        description: `Count, sum, average, least or greatest values of one model's rows, optionally by group. Models: ${catalog}.`,
        input: input.aggregate,
        needs: (q, ctx) => {
          const fields = [...(q.groupBy ?? []), ...Object.values(q.aggregates).flatMap((a) => (a.field === undefined ? [] : [a.field])), ...whereFields(q.where)];
          return [need("read", q.model, fields, pins(q.where), ctx)];
        },
      },
      (q, c, ctx) =>
        db.aggregate(cap(c), {
          model: q.model,
          aggregates: q.aggregates as Readonly<Record<string, AggregateSpec>>,
          ...defined({ where: q.where as Where | undefined, groupBy: q.groupBy, tenant: ctx.tenant ?? undefined }),
        }),
    ),
    delete: defineBuiltinTool(
      {
        name: `${prefix}delete`,
        description: `Delete the rows that match a filter. Models: ${catalog}.`,
        input: input.delete,
        needs: (q, ctx) => [bindArguments(need("delete", q.model, whereFields(q.where), pins(q.where), ctx), deleteQuery(q, ctx.tenant))],
      },
      (q, c, ctx) => db.delete(cap(c), deleteQuery(q, ctx.tenant)),
    ),
  });
}

type Written<K extends "create" | "update" | "delete"> = z.output<Inputs[K]>;

/** The queries the write tools run, made once for their needs (bound to them) and once for their handlers: the same data both times. */
function createQuery(q: Written<"create">, tenant: string | null): CreateQuery {
  return { model: q.model, values: q.values, ...defined({ returning: q.returning, reason: q.reason, tenant: tenant ?? undefined }) };
}

function updateQuery(q: Written<"update">, tenant: string | null): UpdateQuery {
  return { model: q.model, set: q.set, ...defined({ where: q.where as Where | undefined, returning: q.returning, reason: q.reason, tenant: tenant ?? undefined }) };
}

function deleteQuery(q: Written<"delete">, tenant: string | null): DeleteQuery {
  return { model: q.model, ...defined({ where: q.where as Where | undefined, reason: q.reason, tenant: tenant ?? undefined }) };
}

type WhereInput = Readonly<Record<string, Scalar | Readonly<Record<string, unknown>>>> | undefined;

function need(op: DbOp, model: string, fields: readonly string[], pinned: Readonly<Record<string, Scalar>>, ctx: NeedsContext, limit?: number): DbRequest {
  const named = [...new Set(fields)];
  const confinement = confinementOfLineage(ctx.lineage, model, op, named);
  const scope = Object.fromEntries(confinement.scope.map((e) => [e.field, e.value]));
  // The row rules and row limit the caller's chain confines the model by, as the resource will name them.
  const rows = confinement.rows.map((e) => e.rule);
  const max = confinement.maxRows === null ? undefined : op === "create" ? 1 : (limit ?? confinement.maxRows);
  return { action: `db.${op}`, model, fields: named, scope: { ...scope, ...pinned }, ...(rows.length > 0 ? { rows } : {}), ...defined({ limit: max }) };
}

const whereFields = (w: WhereInput): string[] => Object.keys(w ?? {});

/** The values a filter pins fields to, as the resource reads them: a bare value, or an `eq` operator. */
function pins(w: WhereInput): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  for (const [field, spec] of Object.entries(w ?? {})) {
    if (spec === null || typeof spec !== "object") out[field] = spec;
    else if (Object.hasOwn(spec, "eq")) out[field] = spec.eq as Scalar;
  }
  return out;
}

function pick(values: Readonly<Record<string, Scalar>>, keys: readonly string[]): Record<string, Scalar> {
  return Object.fromEntries(keys.filter((k) => Object.hasOwn(values, k)).map((k) => [k, values[k] as Scalar]));
}

function sameScope(a: DbRequest, b: DbRequest): boolean {
  return Object.keys(a.scope).every((k) => a.scope[k] === b.scope[k]);
}
