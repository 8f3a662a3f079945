import type { Scalar } from "../../kernel/index.js";
import { viewOfKey } from "../../kernel/internal.js";
import type { ParsedCreate, ParsedDelete, ParsedRead, ParsedUpdate } from "./query.js";
import type { Field, Model } from "./schema.js";
import type { Confinement } from "./scope.js";
import { viewTransform } from "./views.js";

/*
 * The rows a write changed, for its audit event: before (an update's or a
 * delete's matching rows, read in the write's own transaction just before
 * it) and after (a create's or an update's rows, from its RETURNING
 * clause). Both hold only the fields the capability's grant for that write
 * reaches, each shown as the grant shows it (masked, hashed, redacted): a
 * denied field is never read, so its values cannot reach the log.
 */

/** The fields a write's snapshots hold, and the form each shown other than whole takes. */
export interface SnapshotView {
  readonly fields: readonly Field[];
  readonly transforms: readonly (readonly [string, (v: Scalar) => Scalar])[];
}

/** The snapshot view of a write confined by `confinement`, or null when the grant lets it see no field. */
export function snapshotView(model: Model, confinement: Confinement, hashKey: Buffer): SnapshotView | null {
  const { reachable, actions } = confinement;
  const fields = model.fields.filter((f) => (reachable === null || reachable.has(f.name)) && actions.get(f.name) !== "deny");
  if (fields.length === 0) return null;
  const transforms = fields.flatMap((f) => {
    const action = actions.get(f.name);
    return action === undefined ? [] : [[f.name, viewTransform(viewOfKey(action), hashKey)] as const];
  });
  return { fields, transforms };
}

/**
 * The read of the rows an update or delete will change: its own filters
 * (the scope and row rules are added by the compiler, as for the write),
 * the snapshot's fields, in primary-key order, at most `limit` rows.
 */
export function priorRead(q: ParsedUpdate | ParsedDelete, view: SnapshotView, limit: number): ParsedRead {
  return {
    op: "read",
    model: q.model,
    key: "",
    args: conditionArgs(q),
    named: [],
    pins: [],
    writes: [],
    tenant: q.tenant,
    reason: undefined,
    used: [],
    aggregates: null,
    select: view.fields,
    conditions: q.conditions,
    order: [{ field: q.model.primaryKey, descending: false }],
    limit,
    limitGiven: true,
    hasOffset: false,
  };
}

/** The values an update's or delete's filters bind, in order: an update's come after its new values. */
export function conditionArgs(q: ParsedUpdate | ParsedDelete): readonly Scalar[] {
  return q.op === "update" ? q.args.slice(q.set.length) : q.args;
}

/** A create or update returning the snapshot's fields as well as its own. */
export function returningSnapshot<Q extends ParsedCreate | ParsedUpdate>(q: Q, view: SnapshotView): Q {
  const fields = [...new Set([...q.returning, ...view.fields])].sort((a, b) => a.position - b.position);
  return { ...q, returning: fields };
}

/** `rows` (decoded) as the snapshot shows them: its fields only, in their views. */
export function shown(rows: readonly Record<string, Scalar>[], view: SnapshotView): Record<string, Scalar>[] {
  return rows.map((row) => {
    const out: Record<string, Scalar> = {};
    for (const f of view.fields) out[f.name] = row[f.name] as Scalar;
    for (const [name, show] of view.transforms) out[name] = show(out[name] as Scalar);
    return out;
  });
}

/** `rows` with only the fields the caller asked `returning` for. */
export function returned(rows: readonly Record<string, Scalar>[], fields: readonly Field[]): Record<string, Scalar>[] {
  return rows.map((row) => Object.fromEntries(fields.map((f) => [f.name, row[f.name] as Scalar])));
}
