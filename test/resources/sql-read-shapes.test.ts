import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseRead, type ParsedRead } from "../../src/resources/sql/query.ts";
import { readParser } from "../../src/resources/sql/read-shapes.ts";
import { parseSchema } from "../../src/resources/sql/schema.ts";
import { SCHEMA } from "./sql-fixture.ts";

/*
 * Remembered read shapes: a query with the structure of one parsed before
 * reuses its parse, with only its values read and checked. Whatever the
 * sequence of queries, each must get exactly what parseRead gives it (the
 * same parse, or the same error), and no input can make the parse reused
 * differ from the structure that was read.
 */

const schema = parseSchema(SCHEMA);
const limits = { maxRows: 50, maxInList: 5, maxIncludeDepth: 3 };

/** What parseRead does with `query`: its parse, or its error's class and message. */
function outcome(parse: (q: unknown) => ParsedRead, query: unknown): unknown {
  try {
    return { parsed: parse(query) };
  } catch (e) {
    return { error: (e as Error).constructor.name, message: (e as Error).message };
  }
}

const fresh = (q: unknown) => parseRead(schema, q, limits);

/** Values of every kind a filter may be given, right and wrong for each field. */
const value = fc.oneof(
  fc.constantFrom(null, 0, 1, 7, -1, 2.5, Number.NaN, "Ada", "", "7", true, false),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom([], [1], {}, { eq: 1 }),
);
/** Mostly what a Customer query may say, sometimes not: most queries parse, so most shapes are remembered and then reused. */
const often = <T, U>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<U>) => fc.oneof({ arbitrary: good, weight: 6 }, { arbitrary: bad, weight: 1 });
const field = often(fc.constantFrom("id", "tenantId", "name", "email", "vip", "secretNote"), fc.constant("nope"));
const filterValue = often(fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constantFrom("Ada", "", null, true, false)), value);
const ops = fc.dictionary(often(fc.constantFrom("eq", "ne", "lt", "gte", "in", "startsWith", "contains"), fc.constant("bogus")), fc.oneof(filterValue, fc.array(filterValue, { maxLength: 3 })), {
  minKeys: 0,
  maxKeys: 2,
});
const where = fc.dictionary(field, often(filterValue, ops), { maxKeys: 3 });
const query = fc.record(
  {
    model: often(fc.constant("Customer"), fc.constantFrom("Order", "Nope", 7)),
    fields: often(fc.uniqueArray(field, { minLength: 1, maxLength: 3 }), fc.constantFrom(["id", "id"], [], "id")),
    where,
    orderBy: often(fc.constantFrom([{ field: "id" }], [{ field: "name", direction: "desc" }], []), fc.constant([{ field: "id", direction: "up" }])),
    limit: often(fc.constantFrom(1, 5), fc.constantFrom(0, 51, 2.5, "1")),
    offset: often(fc.constantFrom(0, 3), fc.constantFrom(-1, "2")),
    tenant: often(fc.constantFrom("t1", "t2"), fc.constant(7)),
    extra: fc.constant(1),
  },
  { requiredKeys: ["model"] },
).map((q) => {
  // The unknown key only now and then.
  const { extra, ...rest } = q;
  return extra !== undefined && rest.limit === 5 ? q : rest;
});

/** The query with every value in `where` changed to `v`: the same structure when `v` is of the same kind. */
function withValues(q: Record<string, unknown>, v: unknown): Record<string, unknown> {
  const w = q.where;
  if (typeof w !== "object" || w === null) return q;
  const swap = (spec: unknown): unknown =>
    typeof spec === "object" && spec !== null && !Array.isArray(spec)
      ? Object.fromEntries(Object.entries(spec).map(([op, x]) => [op, Array.isArray(x) ? x.map(() => v) : v]))
      : v;
  return { ...q, where: Object.fromEntries(Object.entries(w).map(([k, spec]) => [k, swap(spec)])) };
}

describe("remembered read shapes", () => {
  it("property: every query of any sequence gets what parseRead gives it, the same parse or the same error", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(query, value), { minLength: 1, maxLength: 12 }), (steps) => {
        const parse = readParser(schema, limits);
        for (const [q, v] of steps) {
          // Each query, again, and with other values: the second and third reuse a shape when the first was parsed.
          for (const asked of [q, q, withValues(q, v), withValues(q, 1), withValues(q, "x"), withValues(q, null), withValues(q, true)]) {
            expect(outcome(parse, asked)).toEqual(outcome(fresh, asked));
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it("reuses the parse of a shape seen before: the same key string, only values read", () => {
    const parse = readParser(schema, limits);
    const first = parse({ model: "Customer", fields: ["id", "name"], where: { id: 7, email: { ne: null } }, limit: 1 });
    const again = parse({ model: "Customer", fields: ["id", "name"], where: { id: 8, email: { ne: null } }, limit: 1 });
    expect(again.key).toBe(first.key);
    expect(again.conditions).toBe(first.conditions);
    expect(again.args).toEqual([8]);
    expect(again.pins).toEqual([[schema.models.get("Customer")?.byName.get("id"), 8]]);
  });

  const customerId = schema.models.get("Customer")?.byName.get("id");
  const bypasses: readonly (readonly [string, () => unknown, (parse: (q: unknown) => ParsedRead) => void])[] = [
    [
      "null where a value was: the operator changes (IS NULL), not the value",
      () => ({ model: "Customer", where: { email: "ada@example.com" } }),
      (parse) => { expect(parse({ model: "Customer", where: { email: null } }).key).toMatch(/email\.isNull/); },
    ],
    [
      "a value of the wrong type in a remembered shape is refused as parseRead refuses it",
      () => ({ model: "Customer", where: { id: "7" } }),
      (parse) => { expect(() => parse({ model: "Customer", where: { id: "7" } })).toThrow(/id must be an integer/); },
    ],
    [
      "an operator object where a bare value was is parsed as one",
      () => ({ model: "Customer", where: { id: { lt: 3 } } }),
      (parse) => { expect(parse({ model: "Customer", where: { id: { lt: 3 } } }).key).toMatch(/id\.lt/); },
    ],
    [
      "a key added to a remembered shape is refused",
      () => ({ model: "Customer", where: { id: 7 }, sql: "drop table customers" }),
      (parse) => { expect(() => parse({ model: "Customer", where: { id: 7 }, sql: "drop table customers" })).toThrow(/query\.sql is not part of a query/); },
    ],
    [
      "a hole in fields, filled by a polluted Array.prototype, is refused though the shape is remembered",
      () => ({ model: "Customer", fields: ["id", "name", "email"], where: { id: 7 } }),
      (parse) => {
        Object.defineProperty(Array.prototype, 1, { value: "name", configurable: true, writable: true });
        try {
          // eslint-disable-next-line no-sparse-arrays -- the hole is the attack
          expect(() => parse({ model: "Customer", fields: ["id", , "email"], where: { id: 7 } })).toThrow(/fields\.1 is missing/);
        } finally {
          delete (Array.prototype as unknown as Record<number, unknown>)[1];
        }
      },
    ],
    [
      "a where key named __proto__ is an unknown field, not a prototype",
      () => JSON.parse('{"model":"Customer","where":{"__proto__":{"eq":1}}}') as unknown,
      (parse) => { expect(() => parse(JSON.parse('{"model":"Customer","where":{"__proto__":{"eq":1}}}'))).toThrow(/Customer has no field "__proto__"/); },
    ],
    [
      "a getter that answers a different filter on each read gets the parse of the one it answered",
      () => {
        let reads = 0;
        return {
          model: "Customer",
          get where() {
            reads++;
            return reads % 2 === 1 ? { id: 7 } : { tenantId: 43 };
          },
        };
      },
      (parse) => {
        parse({ model: "Customer", where: { tenantId: 43 } });
        let reads = 0;
        const q = {
          model: "Customer",
          get where() {
            reads++;
            return reads % 2 === 1 ? { id: 7 } : { tenantId: 43 };
          },
        };
        const parsed = parse(q);
        // Whichever reading was parsed, its conditions and values are that reading's, never a mix.
        const consistent = (parsed.conditions[0]?.field === customerId && parsed.args[0] === 7) || (parsed.conditions[0]?.field.name === "tenantId" && parsed.args[0] === 43);
        expect(consistent).toBe(true);
      },
    ],
    [
      "a Proxy reporting other keys to each reader cannot mix two structures",
      () => ({ model: "Customer", where: { id: 7 } }),
      (parse) => {
        let turn = 0;
        const q = new Proxy({ model: "Customer", where: { id: 7 } }, {
          ownKeys: () => (turn++ % 2 === 0 ? ["model", "where"] : ["model", "where", "limit"]),
          getOwnPropertyDescriptor: (t, k) => (k === "limit" ? { value: 1, enumerable: true, configurable: true, writable: true } : Reflect.getOwnPropertyDescriptor(t, k)),
          get: (t, k) => (k === "limit" ? 1 : (Reflect.get(t, k) as unknown)),
        });
        const parsed = parse(q);
        expect(parsed.args).toEqual([7]);
        expect([1, 51]).toContain(parsed.limit);
        expect(parsed.limitGiven).toBe(parsed.limit === 1);
      },
    ],
  ];

  describe("adversarial: a remembered shape is reused only for a query of exactly its structure", () => {
    it.each(bypasses)("%s", (_name, seed, attempt) => {
      const parse = readParser(schema, limits);
      try {
        parse(seed());
      } catch {
        // A seed that is itself refused remembers nothing; the attempt still runs.
      }
      attempt(parse);
    });
  });
});
