import { InvalidInput } from "../../kernel/index.js";

/*
 * The application's description of its tables. Every identifier that ever
 * reaches SQL (table and column names) comes from here, validated once; the
 * model's input only selects among them by field name.
 */

/** The value types a field can hold; each maps to the JavaScript value agentcap accepts and returns. */
export const FIELD_TYPES = Object.freeze(["integer", "real", "text", "boolean"] as const);
export type FieldType = (typeof FIELD_TYPES)[number];

/** One field of a model as the application declares it. */
export interface FieldSpec {
  readonly type: FieldType;
  /** The column's name in the table, when it differs from the field name. */
  readonly column?: string;
  /** Whether the column accepts NULL (default false). */
  readonly nullable?: boolean;
  /**
   * Whether the database assigns the value (an identity or autoincrement
   * key, a default), so no query may give it: a create or update naming the
   * field is refused before any SQL runs, whatever the value. For a primary
   * key this closes an oracle: a caller confined to one tenant who may choose
   * ids learns, from the unique-key error, which ids exist in other tenants.
   */
  readonly generated?: boolean;
}

/**
 * A relation from one model's rows to another's: the rows of `model` whose
 * field `to` equals this row's field `from`. With `many`, every such row (a
 * list, possibly empty); without, the first (or null).
 */
export interface RelationSpec {
  readonly model: string;
  readonly from: string;
  readonly to: string;
  readonly many?: boolean;
}

/** One model: the table it lives in, its fields, the field that identifies a row, and its relations to other models. */
export interface ModelSpec {
  readonly table: string;
  readonly primaryKey: string;
  readonly fields: Readonly<Record<string, FieldSpec>>;
  /** Relations by name; a name cannot also be a field's, as included rows are returned under it. */
  readonly relations?: Readonly<Record<string, RelationSpec>>;
}

/** Models by name, as the application declares them. */
export type SchemaSpec = Readonly<Record<string, ModelSpec>>;

/** A validated field: what queries are compiled from. */
export interface Field {
  readonly name: string;
  readonly column: string;
  readonly type: FieldType;
  readonly nullable: boolean;
  /** Assigned by the database: never written by a query. */
  readonly generated: boolean;
  /** Position in the model's declaration, so shapes list fields in one canonical order. */
  readonly position: number;
}

/** A validated relation: its name, the model it reaches, and the two fields whose equal values relate rows. */
export interface Relation {
  readonly name: string;
  readonly model: Model;
  readonly from: Field;
  readonly to: Field;
  readonly many: boolean;
}

/** A validated model. */
export interface Model {
  readonly name: string;
  readonly table: string;
  readonly primaryKey: Field;
  /** Fields in declaration order. */
  readonly fields: readonly Field[];
  readonly byName: ReadonlyMap<string, Field>;
  /** Relations by name (filled in once every model is parsed, as they may reach each other). */
  readonly relations: ReadonlyMap<string, Relation>;
}

/** A validated schema: models looked up by name only through a Map, so no inherited key can name one. */
export interface Schema {
  readonly models: ReadonlyMap<string, Model>;
}

// The kernel's identifier rule, so every field a schema names can appear in a grant and a request.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

function identifier(value: unknown, where: string): string {
  if (typeof value !== "string" || !IDENTIFIER.test(value)) {
    throw new InvalidInput(`invalid schema: ${where} must be an identifier (letters, digits, _; not starting with a digit; at most 63), got ${showValue(value)}`);
  }
  // Rows are returned as objects keyed by field name; this key would set their prototype instead.
  if (value === "__proto__") throw new InvalidInput(`invalid schema: ${where} must not be __proto__`);
  return value;
}

function record(value: unknown, where: string): Readonly<Record<string, unknown>> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidInput(`invalid schema: ${where} must be an object`);
  }
  return value as Readonly<Record<string, unknown>>;
}

function onlyKeys(value: Readonly<Record<string, unknown>>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new InvalidInput(`invalid schema: ${where}.${key} is not a setting; expected ${allowed.join(", ")}`);
  }
}

function own(value: Readonly<Record<string, unknown>>, key: string): unknown {
  return Object.hasOwn(value, key) ? value[key] : undefined;
}

function parseField(name: string, raw: unknown, where: string, position: number): Field {
  const spec = record(raw, where);
  onlyKeys(spec, ["type", "column", "nullable", "generated"], where);
  const type = own(spec, "type");
  if (!FIELD_TYPES.includes(type as FieldType)) {
    throw new InvalidInput(`invalid schema: ${where}.type must be one of ${FIELD_TYPES.join(", ")}, got ${showValue(type)}`);
  }
  const column = own(spec, "column");
  const nullable = own(spec, "nullable");
  if (nullable !== undefined && typeof nullable !== "boolean") throw new InvalidInput(`invalid schema: ${where}.nullable must be a boolean`);
  const generated = own(spec, "generated");
  if (generated !== undefined && typeof generated !== "boolean") throw new InvalidInput(`invalid schema: ${where}.generated must be a boolean`);
  return Object.freeze({
    name,
    column: column === undefined ? name : identifier(column, `${where}.column`),
    type: type as FieldType,
    nullable: nullable ?? false,
    generated: generated ?? false,
    position,
  });
}

function parseModel(name: string, raw: unknown): Model {
  const where = `models.${name}`;
  const spec = record(raw, where);
  onlyKeys(spec, ["table", "primaryKey", "fields", "relations"], where);
  const table = identifier(own(spec, "table"), `${where}.table`);
  const rawFields = record(own(spec, "fields"), `${where}.fields`);
  const fields = Object.keys(rawFields).map((f, i) => parseField(identifier(f, `${where}.fields key`), rawFields[f], `${where}.fields.${f}`, i));
  if (fields.length === 0) throw new InvalidInput(`invalid schema: ${where}.fields must declare at least one field`);
  const byName = new Map(fields.map((f) => [f.name, f]));
  const columns = new Set<string>();
  for (const f of fields) {
    if (columns.has(f.column)) throw new InvalidInput(`invalid schema: ${where} maps two fields to column ${f.column}`);
    columns.add(f.column);
  }
  const pkName = identifier(own(spec, "primaryKey"), `${where}.primaryKey`);
  const primaryKey = byName.get(pkName);
  if (primaryKey === undefined) throw new InvalidInput(`invalid schema: ${where}.primaryKey names ${pkName}, which is not one of its fields`);
  return Object.freeze({ name, table, primaryKey, fields: Object.freeze(fields), byName, relations: new Map<string, Relation>() });
}

function parseRelation(models: ReadonlyMap<string, Model>, model: Model, name: string, raw: unknown): Relation {
  const where = `models.${model.name}.relations.${name}`;
  if (model.byName.has(name)) throw new InvalidInput(`invalid schema: ${where}: ${model.name} has a field of that name; included rows are returned under the relation's name`);
  const spec = record(raw, where);
  onlyKeys(spec, ["model", "from", "to", "many"], where);
  const targetName = identifier(own(spec, "model"), `${where}.model`);
  const target = models.get(targetName);
  if (target === undefined) throw new InvalidInput(`invalid schema: ${where}.model names ${targetName}, which is not a model of the schema`);
  const fromName = identifier(own(spec, "from"), `${where}.from`);
  const from = model.byName.get(fromName);
  if (from === undefined) throw new InvalidInput(`invalid schema: ${where}.from names ${fromName}, which is not a field of ${model.name}`);
  const toName = identifier(own(spec, "to"), `${where}.to`);
  const to = target.byName.get(toName);
  if (to === undefined) throw new InvalidInput(`invalid schema: ${where}.to names ${toName}, which is not a field of ${target.name}`);
  // Related rows are matched by the values' equality, which holds across types on neither engine alike.
  if (from.type !== to.type) throw new InvalidInput(`invalid schema: ${where} relates ${model.name}.${from.name} (${from.type}) to ${target.name}.${to.name} (${to.type}); the types must be the same`);
  const many = own(spec, "many");
  if (many !== undefined && typeof many !== "boolean") throw new InvalidInput(`invalid schema: ${where}.many must be a boolean`);
  return Object.freeze({ name, model: target, from, to, many: many ?? false });
}

/** Validates the application's schema; throws InvalidInput naming the bad setting. The result is immutable. */
export function parseSchema(spec: SchemaSpec): Schema {
  const raw = record(spec, "models");
  const names = Object.keys(raw);
  if (names.length === 0) throw new InvalidInput("invalid schema: declare at least one model");
  const models = new Map(names.map((name) => [name, parseModel(identifier(name, "model name"), raw[name])]));
  for (const model of models.values()) {
    const relations = own(record(raw[model.name], `models.${model.name}`), "relations");
    if (relations === undefined) continue;
    const specs = record(relations, `models.${model.name}.relations`);
    const parsed = model.relations as Map<string, Relation>;
    for (const name of Object.keys(specs)) parsed.set(name, parseRelation(models, model, identifier(name, `models.${model.name}.relations key`), specs[name]));
  }
  return Object.freeze({ models });
}

/** The model named `name`; throws InvalidInput naming it when the schema has no such model. */
export function modelNamed(schema: Schema, name: unknown): Model {
  const model = typeof name === "string" ? schema.models.get(name) : undefined;
  if (model === undefined) {
    // The message does not list the declared models: that would show the model names its capability does not reach.
    throw new InvalidInput(`unknown model ${showValue(name)}: the schema declares no such model`);
  }
  return model;
}

/** The field named `name` of `model`; throws InvalidInput naming it, and where it was (`where`, then `index`), when the model has no such field. */
export function fieldNamed(model: Model, name: unknown, where: string, index?: number): Field {
  const field = typeof name === "string" ? model.byName.get(name) : undefined;
  if (field === undefined) throw new InvalidInput(`${index === undefined ? where : `${where}.${index}`}: ${model.name} has no field ${showValue(name)}`);
  return field;
}

/** Why `value` cannot be stored in `field`, or null when it can. */
export function valueProblem(field: Field, value: unknown): string | null {
  if (value === null) return field.nullable ? null : `${field.name} cannot be null`;
  switch (field.type) {
    case "integer":
      return Number.isSafeInteger(value) ? null : `${field.name} must be an integer, got ${showValue(value)}`;
    case "real":
      return typeof value === "number" && Number.isFinite(value) ? null : `${field.name} must be a finite number, got ${showValue(value)}`;
    case "text":
      return typeof value === "string" ? null : `${field.name} must be a string, got ${showValue(value)}`;
    case "boolean":
      return typeof value === "boolean" ? null : `${field.name} must be true or false, got ${showValue(value)}`;
  }
}

/** A short, safe rendering of any input value for an error message: never throws, never prints more than a few dozen characters. */
export function showValue(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}
