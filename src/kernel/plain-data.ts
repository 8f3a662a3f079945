import { InvalidInput } from "./errors.js";

/** A JSON-like value whose objects have no prototype, so no inherited key can masquerade as data. */
export type PlainData = string | number | boolean | null | PlainData[] | { [key: string]: PlainData };

const MAX_DEPTH = 32;
const MAX_NODES = 100_000;

/** Thrown inside the walk and turned into one InvalidInput naming the path, so paths are only built when something is wrong. */
class BadValue extends Error {
  readonly path: (string | number)[] = [];
  constructor(readonly problem: string) {
    super(problem);
  }
}

interface Walk {
  nodes: number;
}

function visit(walk: Walk, v: unknown, depth: number): PlainData {
  if (++walk.nodes > MAX_NODES) throw new BadValue(`is too large (more than ${MAX_NODES} values)`);
  if (v === null || typeof v === "string" || typeof v === "boolean") return v;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new BadValue(`must be a finite number, got ${String(v)}`);
    return v;
  }
  if (typeof v !== "object") throw new BadValue(`must be plain data (string, number, boolean, null, array or object), got ${typeof v}`);
  // The depth limit also stops cycles, without the cost of tracking visited objects.
  if (depth >= MAX_DEPTH) throw new BadValue(`is nested more than ${MAX_DEPTH} levels deep, or refers to itself`);
  if (Array.isArray(v)) {
    const length = v.length;
    const out = new Array<PlainData>(length);
    for (let i = 0; i < length; i++) out[i] = within(walk, i, v[i], depth);
    return out;
  }
  const out = Object.create(null) as Record<string, PlainData>;
  for (const key of Object.keys(v)) out[key] = within(walk, key, (v as Record<string, unknown>)[key], depth);
  return out;
}

function within(walk: Walk, key: string | number, v: unknown, depth: number): PlainData {
  try {
    return visit(walk, v, depth + 1);
  } catch (e) {
    if (e instanceof BadValue) e.path.unshift(key);
    throw e;
  }
}

/**
 * Copies the own enumerable data of `value` into fresh null-prototype objects
 * and arrays. Validation runs on the copy, so a polluted Object.prototype, a
 * getter that answers differently the second time, or a Proxy cannot change
 * what was validated after the fact.
 */
export function snapshotPlainData(value: unknown, what: string): PlainData {
  try {
    return visit({ nodes: 0 }, value, 0);
  } catch (e) {
    if (!(e instanceof BadValue)) throw e;
    const where = e.path.length === 0 ? what : `${what}.${e.path.join(".")}`;
    throw new InvalidInput(`${where} ${e.problem}`);
  }
}

/** Freezes `value` and every object and array inside it, in place; returns it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
