import { InvalidInput, MAX_INCLUDE_DEPTH, type DbRequest, type IncludeNeed, type LinkSummary, type Scalar } from "../../kernel/index.js";
import { defined } from "../../kernel/internal.js";
import { includeDemands, includedFields } from "./include-grants.js";
import { parseRead, type ParsedInclude, type ParsedRead, type QueryLimits } from "./query.js";
import type { Schema } from "./schema.js";
import { confinementOfLineage, fieldUse } from "./scope.js";

/*
 * The requests a read will make, worked out from the caller's lineage as
 * data (a tool's needs see no capability): the read of its own model and
 * the read of each model it includes, each confined as the database resource
 * will confine it (the rule each link is chosen by, its scope pinned further
 * by the read's equality filters, its row rules, its row limit, the fields
 * it returns only in a view), and the parent read naming the relations it
 * includes. The resource still decides every one of them when it runs.
 */

/** Bounds for working out needs only: the resource applies its own limits when the read runs. */
const NEEDS_LIMITS: QueryLimits = { maxRows: Number.MAX_SAFE_INTEGER - 1, maxInList: Number.MAX_SAFE_INTEGER, maxIncludeDepth: MAX_INCLUDE_DEPTH };

/**
 * The requests of `query` (a ReadQuery, validated here: InvalidInput names
 * the bad part) under a chain with `lineage`: the read first, then each
 * included read, depth first. Every level must name its fields, so that the
 * requests say exactly what is read.
 */
export function readRequests(schema: Schema, lineage: readonly LinkSummary[], query: unknown): DbRequest[] {
  const q = parseRead(schema, query, NEEDS_LIMITS);
  const out: DbRequest[] = [];
  addRead(lineage, q, out, "query");
  return out;
}

function addRead(lineage: readonly LinkSummary[], q: ParsedRead, out: DbRequest[], where: string): void {
  if (q.select === null) throw new InvalidInput(`${where}.fields: name the fields to return`);
  const named = q.named.map((f) => f.name);
  const pins = new Map(q.pins.map(([f, v]) => [f.name, v] as const));
  const confinement = confinementOfLineage(lineage, q.model.name, "read", named, pins, includeDemands(q.includes));
  const scope: Record<string, Scalar> = Object.fromEntries(confinement.scope.map((e) => [e.field, e.value]));
  for (const [field, value] of pins) scope[field] = value;
  const use = fieldUse(
    confinement,
    q.select.map((f) => f.name),
    q.used.map((f) => f.name),
  );
  const rows = confinement.rows.map((e) => e.rule);
  const limit = confinement.maxRows === null ? undefined : q.limitGiven ? q.limit : confinement.maxRows;
  const includes = q.includes ?? [];
  out.push({
    action: "db.read",
    model: q.model.name,
    fields: use.fields,
    scope,
    ...(Object.keys(use.views).length > 0 ? { views: use.views } : {}),
    ...(rows.length > 0 ? { rows } : {}),
    ...defined({ limit }),
    ...(includes.length > 0 ? { include: includeNeeds(includes) } : {}),
  });
  for (const include of includes) addRead(lineage, include.query, out, `${where}.include.${include.relation.name}`);
}

/** What a read's includes name, as a request says it: each relation with the fields it names, and its own includes. */
function includeNeeds(includes: readonly ParsedInclude[]): Record<string, IncludeNeed> {
  return Object.fromEntries(
    includes.map((include) => {
      const nested = include.query.includes ?? [];
      return [include.relation.name, { fields: includedFields(include), ...(nested.length > 0 ? { include: includeNeeds(nested) } : {}) }];
    }),
  );
}
