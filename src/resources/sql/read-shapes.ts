import type { Scalar } from "../../kernel/index.js";
import { parseRead, type ParsedRead, type QueryLimits } from "./query.js";
import { valueProblem, type Field, type Schema } from "./schema.js";

/*
 * Parsing a read costs about as much as the indexed one-row SELECT it runs,
 * and callers send the same few shapes again and again with other values.
 * So each parsed read is remembered with the structure of the query it came
 * from: every key in its order, every name and option, and the places that
 * hold values. A later query of exactly that structure reuses the parsed
 * shape, and only its values are read, once each, and checked as parseRead
 * checks them; anything else, an error included, is parsed in full. Shapes
 * belong to the schema alone: which capability asks plays no part in them
 * (the plan is kept per capability, and the kernel decides every call).
 */

/** Parsed shapes remembered per model; beyond this, the oldest goes. */
const SHAPES_PER_MODEL = 8;
/** A read query is never nested deeper than this (query, where, field, operator, in-list, value). */
const MAX_DEPTH = 6;
/** Items in one object or array of a query that is remembered; a larger one is parsed (and mostly refused) without being copied first. */
const MAX_ITEMS = 1024;

const SAME = 0;
const RECORD = 1;
const LIST = 2;
const VALUE = 3;
const OFFSET = 4;
const TENANT = 5;

/** The structure a query must have to reuse a parsed shape. */
type Skeleton =
  /** Exactly this value (a name, an option, null, or an absent part). */
  | { readonly kind: typeof SAME; readonly value: unknown }
  /** An object with exactly these own keys, in this order. */
  | { readonly kind: typeof RECORD; readonly keys: readonly string[]; readonly parts: readonly Skeleton[] }
  /** An array of exactly these items, with no holes. */
  | { readonly kind: typeof LIST; readonly items: readonly Skeleton[] }
  /** A filter's value, bound as `args[arg]`: never null (null changes the operator), fitting `field`, a string for a text match, a scalar where it stands bare. */
  | { readonly kind: typeof VALUE; readonly field: Field; readonly bare: boolean; readonly text: boolean; readonly arg: number }
  /** The offset, bound last. */
  | { readonly kind: typeof OFFSET; readonly arg: number }
  /** The tenant, a string or absent. */
  | { readonly kind: typeof TENANT };

/** A parsed shape with the structure of its query: `pins` give each pinned field's value by its argument (-1: null). */
interface Remembered {
  readonly shape: ParsedRead;
  readonly root: Skeleton;
  readonly argCount: number;
  readonly pins: readonly (readonly [Field, number])[];
}

/** What matching one query reads out of it. */
interface Values {
  readonly args: Scalar[];
  tenant: string | undefined;
}

const isScalar = (v: unknown): v is Scalar => v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean";

/** Whether `v` has the structure `node` describes; its values are written to `out`. Each property is read once. */
function matches(node: Skeleton, v: unknown, out: Values): boolean {
  switch (node.kind) {
    case SAME:
      return v === node.value;
    case RECORD: {
      if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
      const keys = Object.keys(v);
      const expected = node.keys;
      if (keys.length !== expected.length) return false;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i] as string;
        if (key !== expected[i] || !matches(node.parts[i] as Skeleton, (v as Record<string, unknown>)[key], out)) return false;
      }
      return true;
    }
    case LIST: {
      const items = node.items;
      if (!Array.isArray(v) || v.length !== items.length) return false;
      for (let i = 0; i < items.length; i++) {
        if (!Object.hasOwn(v, i) || !matches(items[i] as Skeleton, v[i], out)) return false;
      }
      return true;
    }
    case VALUE:
      if (v === null || (node.bare && !isScalar(v))) return false;
      if (node.text ? typeof v !== "string" : valueProblem(node.field, v) !== null) return false;
      out.args[node.arg] = v as Scalar;
      return true;
    case OFFSET:
      if (!Number.isSafeInteger(v) || (v as number) < 0) return false;
      out.args[node.arg] = v as number;
      return true;
    case TENANT:
      if (v !== undefined && typeof v !== "string") return false;
      out.tenant = v;
      return true;
  }
}

/** The parsed read of a query that has `known`'s structure, or null. */
function reuse(known: Remembered, input: unknown): ParsedRead | null {
  const out: Values = { args: new Array<Scalar>(known.argCount), tenant: undefined };
  if (!matches(known.root, input, out)) return null;
  const { args } = out;
  const pins = known.pins.length === 0 ? NO_PINS : new Array<readonly [Field, Scalar]>(known.pins.length);
  for (let i = 0; i < known.pins.length; i++) {
    const [field, arg] = known.pins[i] as readonly [Field, number];
    (pins as (readonly [Field, Scalar])[])[i] = [field, arg < 0 ? null : (args[arg] as Scalar)];
  }
  const s = known.shape;
  // Written out rather than spread from the shape: this runs on every call, and a literal is the cheaper copy.
  return {
    op: s.op,
    model: s.model,
    key: s.key,
    args,
    named: s.named,
    pins,
    writes: s.writes,
    tenant: out.tenant,
    reason: s.reason,
    used: s.used,
    aggregates: s.aggregates,
    select: s.select,
    conditions: s.conditions,
    order: s.order,
    limit: s.limit,
    limitGiven: s.limitGiven,
    hasOffset: s.hasOffset,
  };
}

const NO_PINS: readonly (readonly [Field, Scalar])[] = Object.freeze([]);

/** Not a query this module copies: parsed in full, and not remembered. */
const UNCOPIABLE = Symbol("uncopiable");

/**
 * The query's own enumerable data, each property read once, into objects
 * with no prototype; UNCOPIABLE for anything but scalars, undefined,
 * arrays without holes and objects, for nesting deeper than a read has, or
 * for more than MAX_ITEMS items in one place.
 */
function copyOf(v: unknown, depth: number): unknown {
  if (v === undefined || isScalar(v)) return v;
  if (typeof v !== "object" || depth >= MAX_DEPTH) return UNCOPIABLE;
  if (Array.isArray(v)) {
    const length = v.length;
    if (length > MAX_ITEMS) return UNCOPIABLE;
    const out = new Array<unknown>(length);
    for (let i = 0; i < length; i++) {
      const item = Object.hasOwn(v, i) ? copyOf(v[i], depth + 1) : UNCOPIABLE;
      if (item === UNCOPIABLE) return UNCOPIABLE;
      out[i] = item;
    }
    return out;
  }
  const keys = Object.keys(v);
  if (keys.length > MAX_ITEMS) return UNCOPIABLE;
  const out = Object.create(null) as Record<string, unknown>;
  for (const key of keys) {
    const item = copyOf((v as Record<string, unknown>)[key], depth + 1);
    if (item === UNCOPIABLE) return UNCOPIABLE;
    out[key] = item;
  }
  return out;
}

/** A part that holds no values: it must be the same again. */
function fixed(v: unknown): Skeleton {
  if (Array.isArray(v)) return { kind: LIST, items: v.map(fixed) };
  if (typeof v === "object" && v !== null) return { kind: RECORD, keys: Object.keys(v), parts: Object.values(v).map(fixed) };
  return { kind: SAME, value: v };
}

/**
 * The structure of `copy`, which parsed as `shape`: each value's argument is
 * found from the conditions the parse produced, so the order of `args` is
 * parseRead's own. Null when the structure cannot be told apart (it then is
 * not remembered).
 */
function skeletonOf(copy: Record<string, unknown>, shape: ParsedRead): Remembered | null {
  const offsets = new Map<string, number>();
  let argCount = 0;
  for (const c of shape.conditions) {
    const id = `${c.field.name}.${c.op}`;
    if (offsets.has(id)) return null;
    offsets.set(id, argCount);
    argCount += c.arity;
  }
  const pins: [Field, number][] = [];
  const unplaced: string[] = [];
  const argOf = (field: Field, op: string, item: number): number => {
    const at = offsets.get(`${field.name}.${op}`);
    if (at === undefined) unplaced.push(`${field.name}.${op}`);
    return (at ?? 0) + item;
  };
  const value = (field: Field, op: string, v: unknown, bare: boolean): Skeleton => {
    if (v === null) {
      if (op === "eq") pins.push([field, -1]);
      return { kind: SAME, value: null };
    }
    const arg = argOf(field, op, 0);
    if (op === "eq") pins.push([field, arg]);
    return { kind: VALUE, field, bare, text: op === "startsWith" || op === "contains", arg };
  };
  const filter = (field: Field, spec: unknown): Skeleton => {
    if (isScalar(spec)) return value(field, "eq", spec, true);
    const ops = spec as Record<string, unknown>;
    const keys = Object.keys(ops);
    return {
      kind: RECORD,
      keys,
      parts: keys.map((op) =>
        op === "in"
          ? { kind: LIST, items: (ops[op] as unknown[]).map((_, i) => ({ kind: VALUE, field, bare: false, text: false, arg: argOf(field, "in", i) }) as const) }
          : value(field, op, ops[op], false),
      ),
    };
  };
  const part = (key: string, v: unknown): Skeleton => {
    if (key === "tenant") return { kind: TENANT };
    if (key === "offset" && v !== undefined) return { kind: OFFSET, arg: shape.args.length - 1 };
    if (key !== "where" || v === undefined) return fixed(v);
    const where = v as Record<string, unknown>;
    const names = Object.keys(where);
    return { kind: RECORD, keys: names, parts: names.map((name) => filter(shape.model.byName.get(name) as Field, where[name])) };
  };
  const keys = Object.keys(copy);
  const root: Skeleton = { kind: RECORD, keys, parts: keys.map((key) => part(key, copy[key])) };
  return unplaced.length === 0 ? { shape, root, argCount: shape.args.length, pins } : null;
}

/** Whether reusing `known` for the query it was made from gives back exactly what parseRead gave: the check that the skeleton is right. */
function reproduces(known: Remembered, copy: unknown): boolean {
  const again = reuse(known, copy);
  const { shape } = known;
  if (again === null || again.tenant !== shape.tenant || again.args.length !== shape.args.length || again.pins.length !== shape.pins.length) return false;
  // Indexed loops, not every(): a value written to the wrong place leaves a hole, which every() would skip.
  for (let i = 0; i < shape.args.length; i++) if (!Object.is(again.args[i], shape.args[i])) return false;
  for (let i = 0; i < shape.pins.length; i++) {
    const [field, v] = again.pins[i] as readonly [Field, Scalar];
    const [expected, value] = shape.pins[i] as readonly [Field, Scalar];
    if (field !== expected || !Object.is(v, value)) return false;
  }
  return true;
}

/** Freezes the parts of a parsed shape that every reuse of it shares. */
function frozen(shape: ParsedRead): ParsedRead {
  for (const part of [shape.named, shape.used, shape.select, shape.order, shape.conditions, shape.pins, shape.args]) {
    if (part !== null) Object.freeze(part);
  }
  for (const item of [...shape.order, ...shape.conditions, ...shape.pins]) Object.freeze(item);
  return Object.freeze(shape);
}

/**
 * `parseRead` for one schema and its limits, remembering the shapes it
 * parses: the same result (or error) as parseRead, for a repeated shape
 * without parsing it again.
 */
export function readParser(schema: Schema, limits: QueryLimits): (input: unknown) => ParsedRead {
  const byModel = new Map<string, Remembered[]>();
  return (input) => {
    if (typeof input === "object" && input !== null) {
      const model: unknown = Object.hasOwn(input, "model") ? (input as { model: unknown }).model : undefined;
      const known = typeof model === "string" ? byModel.get(model) : undefined;
      if (known !== undefined) {
        for (const k of known) {
          const hit = reuse(k, input);
          if (hit !== null) return hit;
        }
      }
    }
    // Parsed from a copy read once, so the structure remembered is the one that was parsed.
    const copy = copyOf(input, 0);
    if (typeof copy !== "object" || copy === null || Array.isArray(copy)) return parseRead(schema, input, limits);
    const shape = frozen(parseRead(schema, copy, limits));
    // A read with includes is parsed in full each time: its included reads hold values and a tenant of their own, which a remembered shape would not refresh.
    if (shape.includes !== undefined) return shape;
    const known = skeletonOf(copy as Record<string, unknown>, shape);
    if (known !== null && reproduces(known, copy)) {
      const list = byModel.get(shape.model.name) ?? [];
      list.unshift(known);
      if (list.length > SHAPES_PER_MODEL) list.pop();
      byModel.set(shape.model.name, list);
    }
    return shape;
  };
}
