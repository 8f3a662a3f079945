import type * as PrismaAst from "@mrleebo/prisma-ast";
import { InvalidInput } from "../../kernel/index.js";
import { importOptional } from "../../kernel/internal.js";
import type { IntrospectedSchema, Skipped } from "./introspect.js";
import type { FieldSpec, FieldType, ModelSpec } from "./schema.js";

/*
 * Model definitions imported from the application's Prisma schema, parsed by
 * @mrleebo/prisma-ast (an optional peer dependency, loaded on first use).
 * Each model becomes a model of the same name on its table (`@@map`), each
 * scalar field a field on its column (`@map`); `@id` is the primary key, and
 * `@default(autoincrement())` or `@default(dbgenerated(...))` mark a field
 * the database assigns. Relation fields are not columns and are left out;
 * what agentcap cannot express is listed as skipped, as introspection does.
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
  for (const block of parsed.list) {
    if (block.type !== "model") continue;
    const model = modelOf(block, enums, models, skipped);
    if (model !== null && IDENTIFIER.test(block.name)) schema[block.name] = model;
  }
  return { schema, skipped };
}
