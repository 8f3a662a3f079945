import type * as PrismaAst from "@mrleebo/prisma-ast";
import { InvalidInput } from "../../kernel/index.js";
import { importOptional } from "../../kernel/internal.js";
import type { IntrospectedSchema, Skipped } from "./introspect.js";
import type { FieldSpec, FieldType, ModelSpec, RelationSpec } from "./schema.js";

/*
 * Model definitions imported from the application's Prisma schema, parsed by
 * @mrleebo/prisma-ast (an optional peer dependency, loaded on first use).
 * Each model becomes a model of the same name on its table (`@@map`), each
 * scalar field a field on its column (`@map`); `@id` is the primary key, and
 * `@default(autoincrement())` or `@default(dbgenerated(...))` mark a field
 * the database assigns. A relation field becomes a relation: the side with
 * `@relation(fields: [...], references: [...])` to one row, the other side
 * to many rows (a list field) or one (an optional field), matched by the
 * relation's name where Prisma gives one. What agentcap cannot express
 * (a relation over several fields, a model left out) is listed as skipped,
 * as introspection does.
 */

const SCALARS: Readonly<Record<string, FieldType>> = { Int: "integer", BigInt: "integer", Float: "real", Decimal: "real", String: "text", Boolean: "boolean" };
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** A string attribute argument as Prisma writes it (quoted), without its quotes. */
function text(value: unknown): string | null {
  return typeof value === "string" && value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : null;
}

function attribute(attributes: readonly { name: string; args?: readonly PrismaAst.AttributeArgument[] }[] | undefined, name: string) {
  return attributes?.find((a) => a.name === name);
}

function modelOf(model: PrismaAst.Model, enums: ReadonlySet<string>, models: ReadonlySet<string>, skipped: Skipped[]): ModelSpec | null {
  const blockMap = model.properties.find((p): p is PrismaAst.BlockAttribute => p.type === "attribute" && p.name === "map");
  const table = blockMap === undefined ? model.name : text(blockMap.args[0]?.value);
  if (table === null || !IDENTIFIER.test(table)) {
    skipped.push({ table: model.name, reason: "its table name is not an identifier" });
    return null;
  }
  if (model.properties.some((p) => p.type === "attribute" && p.name === "id")) {
    skipped.push({ table, reason: "its primary key spans several columns (@@id)" });
    return null;
  }
  const fields: Record<string, FieldSpec> = {};
  let primaryKey: string | null = null;
  for (const p of model.properties) {
    if (p.type !== "field") continue;
    const declared = typeof p.fieldType === "string" ? p.fieldType : p.fieldType.name;
    // A relation is another model's rows, not a column of this one.
    if (models.has(declared)) continue;
    const type = Object.hasOwn(SCALARS, declared) ? (SCALARS[declared] as FieldType) : enums.has(declared) ? "text" : null;
    if (type === null || p.array === true) {
      skipped.push({ table, column: p.name, reason: `its type ${declared}${p.array === true ? "[]" : ""} is not one agentcap reads (integer, real, text, boolean)` });
      continue;
    }
    const mapped = attribute(p.attributes, "map");
    const column = mapped === undefined ? p.name : text(mapped.args?.[0]?.value);
    if (!IDENTIFIER.test(p.name) || p.name === "__proto__" || column === null || !IDENTIFIER.test(column)) {
      skipped.push({ table, column: p.name, reason: "its name or column is not an identifier" });
      continue;
    }
    const fallback = attribute(p.attributes, "default")?.args?.[0]?.value;
    const assigned = typeof fallback === "object" && fallback !== null && "type" in fallback && fallback.type === "function" && ["autoincrement", "dbgenerated"].includes(fallback.name);
    fields[p.name] = { type, ...(column === p.name ? {} : { column }), ...(p.optional === true ? { nullable: true } : {}), ...(assigned ? { generated: true } : {}) };
    if (attribute(p.attributes, "id") !== undefined) primaryKey = p.name;
  }
  if (primaryKey === null) {
    skipped.push({ table, reason: "it has no @id field agentcap reads" });
    return null;
  }
  return { table, primaryKey, fields };
}

/** The names listed under `key` in a field's @relation (`fields`, `references`), or undefined when it has none. */
function relationList(field: PrismaAst.Field, key: string): string[] | undefined {
  for (const arg of attribute(field.attributes, "relation")?.args ?? []) {
    const v = arg.value as unknown;
    if (typeof v !== "object" || v === null || (v as { type?: unknown }).type !== "keyValue" || (v as { key?: unknown }).key !== key) continue;
    const list = (v as { value?: { type?: unknown; args?: unknown } }).value;
    if (list?.type === "array" && Array.isArray(list.args)) return list.args.filter((a): a is string => typeof a === "string");
  }
  return undefined;
}

/** The relation's name (`@relation("name")` or `@relation(name: "name")`), or null when it has none. */
function relationName(field: PrismaAst.Field): string | null {
  for (const arg of attribute(field.attributes, "relation")?.args ?? []) {
    const v = arg.value as unknown;
    if (typeof v === "string") return text(v);
    if (typeof v === "object" && v !== null && (v as { type?: unknown }).type === "keyValue" && (v as { key?: unknown }).key === "name") return text((v as { value?: unknown }).value);
  }
  return null;
}

const relationFields = (model: PrismaAst.Model, models: ReadonlySet<string>) =>
  model.properties.filter((p): p is PrismaAst.Field => p.type === "field" && models.has(typeof p.fieldType === "string" ? p.fieldType : p.fieldType.name));
const typeName = (field: PrismaAst.Field) => (typeof field.fieldType === "string" ? field.fieldType : field.fieldType.name);

/** The relation a relation field of `block` makes, or a reason it makes none. */
function relationOf(block: PrismaAst.Model, field: PrismaAst.Field, blocks: ReadonlyMap<string, PrismaAst.Model>, models: ReadonlySet<string>): RelationSpec | string {
  const target = typeName(field);
  const fields = relationList(field, "fields");
  const references = relationList(field, "references");
  if (fields !== undefined && references !== undefined) {
    if (fields.length !== 1 || references.length !== 1) return "its relation spans several fields";
    return { model: target, from: fields[0] as string, to: references[0] as string };
  }
  // The other side holds the keys: the field of the target model that relates back, under the same relation name.
  const name = relationName(field);
  const owner = relationFields(blocks.get(target) as PrismaAst.Model, models).find(
    (f) => typeName(f) === block.name && f !== field && relationName(f) === name && relationList(f, "fields") !== undefined,
  );
  const keys = owner === undefined ? undefined : { fields: relationList(owner, "fields") ?? [], references: relationList(owner, "references") ?? [] };
  if (keys === undefined) return "its relation names no fields and references on either side";
  if (keys.fields.length !== 1 || keys.references.length !== 1) return "its relation spans several fields";
  return { model: target, from: keys.references[0] as string, to: keys.fields[0] as string, ...(field.array === true ? { many: true } : {}) };
}

/** Adds the relations of the models kept in `schema`; one reaching a model or field left out is skipped and listed. */
function addRelations(blocks: ReadonlyMap<string, PrismaAst.Model>, schema: Record<string, ModelSpec>, skipped: Skipped[]): void {
  const models = new Set(blocks.keys());
  for (const [name, block] of blocks) {
    const spec = schema[name];
    if (spec === undefined) continue;
    const relations: Record<string, RelationSpec> = {};
    for (const field of relationFields(block, models)) {
      const relation = relationOf(block, field, blocks, models);
      const target = typeof relation === "string" ? undefined : schema[relation.model];
      const problem =
        typeof relation === "string"
          ? relation
          : target === undefined
            ? `it relates to ${relation.model}, which was left out`
            : !Object.hasOwn(spec.fields, relation.from) || !Object.hasOwn(target.fields, relation.to)
              ? "its relation names a field that was left out"
              : null;
      if (problem !== null || typeof relation === "string") skipped.push({ table: spec.table, column: field.name, reason: problem ?? "" });
      else relations[field.name] = relation;
    }
    if (Object.keys(relations).length > 0) schema[name] = { ...spec, relations };
  }
}

/**
 * Reads the models of a Prisma schema (the text of `schema.prisma`). Needs
 * the optional dependency @mrleebo/prisma-ast (MissingDependency without
 * it); a schema it cannot parse is InvalidInput.
 */
export async function schemaFromPrisma(source: string): Promise<IntrospectedSchema> {
  if (typeof source !== "string") throw new InvalidInput("schemaFromPrisma takes the text of a Prisma schema");
  const { getSchema } = await importOptional<typeof PrismaAst>("@mrleebo/prisma-ast", "importing a Prisma schema");
  let parsed: PrismaAst.Schema;
  try {
    parsed = getSchema(source);
  } catch (e) {
    throw new InvalidInput(`the Prisma schema could not be parsed: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`, { cause: e });
  }
  const enums = new Set(parsed.list.filter((b): b is PrismaAst.Enum => b.type === "enum").map((b) => b.name));
  const models = new Set(parsed.list.filter((b): b is PrismaAst.Model => b.type === "model").map((b) => b.name));
  const schema: Record<string, ModelSpec> = {};
  const skipped: Skipped[] = [];
  const blocks = new Map<string, PrismaAst.Model>();
  for (const block of parsed.list) {
    if (block.type !== "model") continue;
    blocks.set(block.name, block);
    const model = modelOf(block, enums, models, skipped);
    if (model !== null && IDENTIFIER.test(block.name)) schema[block.name] = model;
  }
  addRelations(blocks, schema, skipped);
  return { schema, skipped };
}
