import { LimitExceeded } from "../../kernel/index.js";
import type { ParsedInclude, ParsedQuery } from "./query.js";
import type { Field } from "./schema.js";
import type { RowBudget } from "./scope.js";

/*
 * What one call may cost beyond its rows: how many fields it touches and how
 * complex it is; and what a chain of links may read in total. The per-call
 * bounds are the resource's own (its limits); the totals come from the
 * grants (maxRowsRead) and are counted here, per link.
 */

/**
 * A query's complexity score: a rough measure of the work it asks of the
 * database, so an agent cannot send one that is cheap to write and costly to
 * run. Each returned field counts 1, each filter 1 plus 1 per further value
 * of an `in` list, a `startsWith` or `contains` filter 3 more (no index
 * serves a substring match), each ordering field 2, an offset 2, each
 * aggregate 2 and each group field 3. Each included relation counts 4 per
 * level it is nested at (4 at the first, 8 at the second …), since each
 * level is a further statement per batch of rows, plus its own fields,
 * filters and orderings as above (its fields: those it names, or all its
 * model's). Writes count their filters and fields the same way. The
 * capability's own scope and row rules count nothing: the caller did not
 * choose them.
 */
export function complexityOf(q: ParsedQuery, returned: readonly Field[]): number {
  return scoreOf(q, returned, 1);
}

const INCLUDE_LEVEL_COST = 4;

function includesScore(includes: readonly ParsedInclude[] | undefined, depth: number): number {
  let score = 0;
  for (const { query } of includes ?? []) score += INCLUDE_LEVEL_COST * depth + scoreOf(query, query.select ?? query.model.fields, depth + 1);
  return score;
}

/** Fields an include tree touches, counted per included read (its fields: those it names, or all its model's). */
function includedFields(includes: readonly ParsedInclude[] | undefined): number {
  let count = 0;
  for (const { query } of includes ?? []) count += new Set([...query.named, ...(query.select ?? query.model.fields)]).size + includedFields(query.includes);
  return count;
}

function scoreOf(q: ParsedQuery, returned: readonly Field[], depth: number): number {
  let score = returned.length;
  if (q.op === "create") return score + q.columns.length;
  for (const c of q.conditions) {
    score += 1 + Math.max(0, c.arity - 1);
    if (c.op === "startsWith" || c.op === "contains") score += 3;
  }
  if (q.op === "update") score += q.set.length;
  if (q.op !== "read") return score;
  score += 2 * q.order.length + (q.hasOffset ? 2 : 0);
  if (q.aggregates !== null) score += 2 * q.aggregates.length + 2 * (q.select?.length ?? 0);
  return score + includesScore(q.includes, depth);
}

/** Refuses a call that touches more than `maxFields` fields or scores above `maxComplexity`; nothing has run yet. */
export function checkCallCost(q: ParsedQuery, returned: readonly Field[], maxFields: number, maxComplexity: number): void {
  const own = new Set([...q.named, ...returned]).size;
  const included = q.op === "read" ? includedFields(q.includes) : 0;
  const touched = own + included;
  if (touched > maxFields) {
    throw new LimitExceeded(
      included === 0
        ? `the query uses ${touched} fields of ${q.model.name}; one call may use at most ${maxFields} (maxFields): name fewer in fields`
        : `the query uses ${touched} fields (${own} of ${q.model.name}, ${included} of the models it includes); one call may use at most ${maxFields} (maxFields): name fewer in fields, or list fields in each include`,
      "maxFields",
    );
  }
  const score = complexityOf(q, returned);
  if (score > maxComplexity) {
    throw new LimitExceeded(
      `the query's complexity is ${score}, above the ${maxComplexity} one call may have (maxComplexity): use fewer filters, list values, orderings, aggregates, includes or fields`,
      "maxComplexity",
    );
  }
}

/**
 * Rows read so far, per link and model. Charged synchronously when a read's
 * rows are in hand, so reads in flight together cannot both spend the last
 * rows. Entries are never dropped: forgetting one would give its link its
 * total again.
 */
export class RowsReadLedger {
  readonly #spent = new Map<string, number>();

  /**
   * Charges `rows` to every budget, or to none: returns the first budget
   * without room for them (charging nothing), or null once all are charged.
   */
  charge(model: string, budgets: readonly RowBudget[], rows: number): { readonly budget: RowBudget; readonly left: number } | null {
    for (const budget of budgets) {
      const left = budget.max - (this.#spent.get(`${budget.linkId}|${model}`) ?? 0);
      if (rows > left) return { budget, left };
    }
    for (const budget of budgets) {
      const key = `${budget.linkId}|${model}`;
      this.#spent.set(key, (this.#spent.get(key) ?? 0) + rows);
    }
    return null;
  }
}
