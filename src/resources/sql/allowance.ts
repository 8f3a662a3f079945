import { DB_OPS, type Capability, type DbOp, type Decision, type LinkSummary } from "../../kernel/index.js";
import type { Model } from "./schema.js";
import { confinementOfLineage } from "./scope.js";

/*
 * What a capability does allow on a model, told with a denial so that the
 * agent can retry within its authority: the operations every link grants on
 * the model, and for the operation asked, the fields it may use whole and
 * those it may only see in a view. Only what the capability grants is named,
 * so the words say nothing of what lies outside it.
 */

const own = <T extends object, K extends keyof T>(o: T, k: K): T[K] | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

/** The operations on `model` that every link of `lineage` grants (a link with no grant of its own restricts nothing). */
function grantedOps(lineage: readonly LinkSummary[], model: string): DbOp[] {
  return DB_OPS.filter((op) => lineage.every((link) => link.grant === null || (own(link.grant, "db") ?? []).some((r) => r.model === model && r.ops.includes(op))));
}

const shown = (action: string) => (action.startsWith("mask:") ? "masked" : action === "hash" ? "hashed" : "redacted");

/** One sentence: what `lineage` allows of `op` on `model`. */
export function allowance(lineage: readonly LinkSummary[], model: Model, op: DbOp): string {
  const ops = grantedOps(lineage, model.name);
  if (ops.length === 0) return `this capability grants no operation on ${model.name}`;
  if (!ops.includes(op)) return `on ${model.name} this capability grants ${ops.join(", ")}`;
  const { reachable, actions } = confinementOfLineage(lineage, model.name, op, []);
  const fields = model.fields.filter((f) => (reachable === null || reachable.has(f.name)) && actions.get(f.name) !== "deny");
  const whole = fields.filter((f) => !actions.has(f.name)).map((f) => f.name);
  const views = fields.filter((f) => actions.has(f.name)).map((f) => `${f.name} (${shown(actions.get(f.name) ?? "")})`);
  const uses = whole.length === 0 ? "no field whole" : whole.join(", ");
  return `a ${op} of ${model.name} may use ${uses}${views.length === 0 ? "" : `, and return only as shown ${views.join(", ")}`}`;
}

/**
 * `decision`, when the kernel denied it for the db domain, with what `cap`
 * allows added to its reason. The lineage is read only then: an allowed call
 * (nearly every one) does not make it.
 */
export function withAllowance(decision: Decision, cap: Capability, model: Model, op: DbOp): Decision {
  if (decision.allowed || decision.rule !== "db") return decision;
  return { ...decision, reason: `${decision.reason}; ${allowance(cap.lineage, model, op)}` };
}
