import { GrantSchemaMismatch, parseGrant, type DbRule, type Grant, type MintPolicy, type RowRule } from "../../kernel/index.js";
import { isPrincipalRef, ruleChildren } from "../../kernel/internal.js";
import { parseSchema, valueProblem, type Model, type Schema, type SchemaSpec } from "./schema.js";

/*
 * Grants checked against the database's schema before they are used: a
 * model the schema lacks, a field it lacks (listed, shown in a view, in a
 * row rule, in an include), a relation it lacks, or a scope the schema cannot enforce would otherwise surface
 * only as a denial at the first call. Every problem of every grant is
 * gathered, so one error lists them all.
 */

const own = <T extends object, K extends keyof T>(o: T, k: K): T[K] | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

function ruleFieldNames(rule: RowRule, out: string[]): string[] {
  const children = ruleChildren(rule);
  if (children === null) out.push((rule as { field: string }).field);
  else for (const child of children) ruleFieldNames(child, out);
  return out;
}

function dbRuleProblems(schema: Schema, rule: DbRule, where: string): string[] {
  const model: Model | undefined = schema.models.get(rule.model);
  if (model === undefined) return [`${where}: model ${rule.model} is not in the schema`];
  const problems: string[] = [];
  const unknown = (names: Iterable<string>, part: string, why = "") => {
    for (const name of names) if (!model.byName.has(name)) problems.push(`${where}.${part}: ${model.name} has no field ${name}${why}`);
  };
  unknown(own(rule, "fields") ?? [], "fields");
  unknown(Object.keys(own(rule, "fieldActions") ?? {}), "fieldActions");
  unknown(own(rule, "immutable") ?? [], "immutable");
  unknown(own(rule, "required") ?? [], "required");
  unknown(Object.keys(own(rule, "autoSet") ?? {}), "autoSet", ", so it cannot be set");
  const rows = own(rule, "rows");
  if (rows !== undefined) unknown(new Set(ruleFieldNames(rows, [])), "rows", ", so the row rule cannot be enforced");
  for (const [name, value] of Object.entries(own(rule, "scope") ?? {})) {
    const field = model.byName.get(name);
    if (field === undefined) problems.push(`${where}.scope: ${model.name} has no field ${name}, so the scope cannot be enforced`);
    else if (isPrincipalRef(value)) {
      // The principal's user and tenant are strings, bound when the link is made.
      if (field.type !== "text") problems.push(`${where}.scope: ${name} is bound to the principal's ${value.principal}, a string, but ${model.name}.${name} holds ${field.type} values`);
    } else {
      const problem = valueProblem(field, value);
      if (problem !== null) problems.push(`${where}.scope: ${problem}`);
    }
  }
  for (const [name, include] of Object.entries(own(rule, "include") ?? {})) {
    const relation = model.relations.get(name);
    if (relation === undefined) problems.push(`${where}.include: ${model.name} has no relation ${name}`);
    else for (const f of own(include, "fields") ?? []) if (!relation.model.byName.has(f)) problems.push(`${where}.include.${name}.fields: ${relation.model.name} has no field ${f}`);
  }
  return problems;
}

/** Throws GrantSchemaMismatch listing every problem of `grants` (each parsed first: InvalidInput for a malformed one) against `schema`, each naming where it is (`grants.0.db.1.fields` …). */
export function checkParsedGrants(schema: Schema, grants: readonly Grant[]): void {
  const problems = grants.flatMap((grant, g) => (own(parseGrant(grant), "db") ?? []).flatMap((rule, r) => dbRuleProblems(schema, rule, `grants.${g}.db.${r}`)));
  if (problems.length > 0) throw new GrantSchemaMismatch(problems);
}

/** Checks `grants` against the application's schema: GrantSchemaMismatch lists every model, field or scope it lacks; returns when they fit. */
export function checkGrants(schema: SchemaSpec, grants: readonly Grant[]): void {
  checkParsedGrants(parseSchema(schema), grants);
}

/**
 * The mint policy `policy`, with every grant it returns checked against
 * `schema` first: a grant that does not fit the database is never minted
 * (GrantSchemaMismatch, listing every problem), instead of denying at its
 * first call.
 */
export function schemaCheckedPolicy(schema: SchemaSpec, policy: MintPolicy): MintPolicy {
  const parsed = parseSchema(schema);
  return (principal) => {
    const grant = policy(principal);
    if (grant !== null) checkParsedGrants(parsed, [grant]);
    return grant;
  };
}
