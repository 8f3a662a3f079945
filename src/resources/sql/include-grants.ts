import type { IncludeRule } from "../../kernel/index.js";
import type { ParsedInclude } from "./query.js";
import type { IncludeDemand, IncludeGrant, LinkAt } from "./scope.js";

/*
 * Whether the links of a chain let a read include one relation: every link
 * that grants the read of the parent model must name the relation in its
 * rule's `include`, let includes nest as deep as the read does below that
 * model, and list (when it lists fields) every field the include names.
 * Each link applies, so a narrowing can only remove relations, fields and
 * levels. The included rows are then confined as a read of their own model
 * (by the database resource, through the kernel); this module decides only
 * what the parent's grants say about the relation.
 */

/** A refusal: the link that refuses, what it says after "link N" (for the caller, within the capability's authority), and the rule's short form. */
export interface IncludeRefusal {
  readonly at: LinkAt;
  readonly reason: string;
  readonly because: string;
}

/** What the links allow of one include: the included model's fields it may return when it names none (null: every field its own grant allows). */
export interface IncludeAllowance {
  readonly within: ReadonlySet<string> | null;
}

const own = <T extends object, K extends keyof T>(o: T, k: K): T[K] | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);
const ruleOf = (grant: IncludeGrant, relation: string): IncludeRule | undefined => (grant.include !== undefined && Object.hasOwn(grant.include, relation) ? grant.include[relation] : undefined);

/** What every link lets a read of `model` include, as a sentence part: "orders, invoices (nested at most 2 levels)" or "no relation". */
function allowedText(grants: readonly IncludeGrant[]): string {
  const [first, ...rest] = grants;
  const names = Object.keys(first?.include ?? {})
    .filter((name) => rest.every((g) => ruleOf(g, name) !== undefined))
    .sort();
  if (names.length === 0) return "no relation";
  const depth = Math.min(...grants.map((g) => g.maxDepth));
  return `${names.join(", ")} (nested at most ${depth} level${depth === 1 ? "" : "s"})`;
}

function intersect(within: ReadonlySet<string> | null, fields: readonly string[]): Set<string> {
  return new Set(within === null ? fields : fields.filter((f) => within.has(f)));
}

/** The fields of its model an include names, without those read only to relate rows (which no include rule lists). */
export function includedFields(include: ParsedInclude): string[] {
  const links = new Set(include.query.links ?? []);
  return include.query.named.filter((f) => !links.has(f)).map((f) => f.name);
}

/** What a read's includes ask of the rule each link grants the read by, for the choice of that rule. */
export function includeDemands(includes: readonly ParsedInclude[] | undefined): IncludeDemand[] {
  return (includes ?? []).map((include) => ({ name: include.relation.name, height: include.height, fields: includedFields(include) }));
}

/**
 * Decides `include` of a read of `model` against the grants of the links'
 * chosen rules for that read: a refusal naming the first link that does
 * not allow it, or what it may return.
 */
export function includeAllowance(model: string, grants: readonly IncludeGrant[], include: ParsedInclude): IncludeRefusal | IncludeAllowance {
  const name = include.relation.name;
  const named = includedFields(include);
  let within: ReadonlySet<string> | null = null;
  for (const grant of grants) {
    const rule = ruleOf(grant, name);
    if (rule === undefined) {
      return {
        at: grant,
        reason: `does not let a read of ${model} include ${name}; the capability lets it include ${allowedText(grants)}`,
        because: `does not let a read of ${model} include ${name}`,
      };
    }
    if (include.height > grant.maxDepth) {
      return {
        at: grant,
        reason: `lets includes nest at most ${grant.maxDepth} level${grant.maxDepth === 1 ? "" : "s"} below a read of ${model}, and this include of ${name} nests ${include.height}`,
        because: `lets includes nest at most ${grant.maxDepth} levels below a read of ${model}`,
      };
    }
    const fields = own(rule, "fields");
    if (fields === undefined) continue;
    const outside = named.find((f) => !fields.includes(f));
    if (outside !== undefined) {
      return {
        at: grant,
        reason: `lets a read of ${model} include ${name} naming only the fields ${fields.join(", ") || "(none)"} of ${include.relation.model.name}, and this include names ${outside}`,
        because: `lets a read of ${model} include ${name} with only some fields of ${include.relation.model.name}`,
      };
    }
    within = intersect(within, fields);
  }
  return { within };
}
