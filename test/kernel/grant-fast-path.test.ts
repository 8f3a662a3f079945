import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidInput } from "../../src/index.ts";
import { fastParseConditions, fastParseGrant } from "../../src/kernel/grant-fast-path.ts";
import { parseConditions, parseGrant, schemaParseGrant } from "../../src/kernel/grant.ts";
import { check, narrow } from "../../src/kernel/capability.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { grant as validGrant } from "../token/arbitraries.ts";

/*
 * The grant fast path must never accept what the schemas reject, nor build
 * anything different from what they build: generated grants near the edges
 * of the rules (valid ones and ones that break one rule) are given to both.
 */
const text = fc.oneof(
  fc.constantFrom("", "a", "Customer", "tenantId", "_x", "9lives", "has space", "a\0b", "x".repeat(63), "x".repeat(256), "x".repeat(257), "\ud800"),
  fc.string({ maxLength: 8 }),
);
const path = fc.oneof(
  fc.constantFrom("/", "/srv/data", "/srv/data/", "srv/data", "/srv//data", "/srv/./data", "/srv/../etc", "/a\0b", ""),
  fc.array(fc.constantFrom("a", "b", ".", "..", "", "c d"), { maxLength: 4 }).map((s) => `/${s.join("/")}`),
);
const number = fc.oneof(
  fc.constantFrom(0, -0, 1, -1, 1.5, 2 ** 53, 2 ** 53 - 1, Number.MAX_VALUE, Number.NaN, Infinity),
  fc.integer({ min: -5, max: 1_000_000 }),
  fc.double(),
);
const odd = fc.constantFrom<unknown>(undefined, null, "x", 1, [], {}, [1], true);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: odd }), { nil: undefined });
const list = <T>(arb: fc.Arbitrary<T>, min = 0) => fc.oneof({ weight: 6, arbitrary: fc.array(arb, { minLength: min, maxLength: 3 }) }, { weight: 1, arbitrary: odd });
const sometimesExtra = fc.option(fc.constant(1), { nil: undefined, freq: 8 });

const fsRule = fc.record({ path, ops: list(fc.constantFrom("read", "write", "list", "delete", "chmod")), subtree: maybe(fc.boolean()), extra: sometimesExtra }, { requiredKeys: [] });
const httpRule = fc.record(
  {
    origin: fc.constantFrom("https://api.example.com", "http://127.0.0.1:8080", "https://API.example.com", "https://a.example/", "ftp://x", "nope"),
    methods: list(fc.constantFrom("GET", "POST", "get", "TRACE")),
    pathPrefix: maybe(fc.constantFrom("/", "/v1/", "v1", "")),
    allowPrivateNetwork: maybe(fc.boolean()),
    addresses: maybe(list(fc.constantFrom("10.0.0.0/8", "10.0.0.1/8", "10.0.0.1", "fd00::/8", "::ffff:0:0/96", "0.0.0.0/0", "::/0", "10.0.0.0/33", "FD00::/8", "", 7))),
  },
  { requiredKeys: [] },
);
const scalar = fc.oneof(fc.string({ maxLength: 4 }), number, fc.boolean(), fc.constant(null), fc.constant(undefined), fc.constant([1]));
const fieldAction = fc.oneof(
  fc.constantFrom<unknown>("allow", "hash", "redact", "deny", "mask", "ALLOW", { mask: "***-**-{last4}" }, { mask: "{first1}" }, { mask: "" }, { mask: "{last10}" }, { mask: "{middle2}" }, { mask: "x".repeat(65) }, { mask: 4 }, { mask: "a", extra: 1 }, {}),
  fc.string({ maxLength: 6 }).map((mask) => ({ mask })),
);
const dbRule = fc.record(
  {
    model: text,
    ops: list(fc.constantFrom("read", "create", "update", "delete", "drop")),
    fields: maybe(list(text)),
    scope: maybe(fc.dictionary(text, scalar, { maxKeys: 3 })),
    fieldActions: maybe(fc.dictionary(text, fieldAction, { maxKeys: 3 })),
    maxRows: maybe(number),
    rows: maybe(fc.constantFrom<unknown>({ field: "a", op: "eq", value: 1 }, { field: "a", op: "in", value: 1 }, { any: [] }, { not: { field: "9", op: "eq", value: 1 } })),
    immutable: maybe(list(text)),
    required: maybe(list(text)),
    requireFilter: maybe(fc.constantFrom<unknown>(true, false, "true", 1, 0)),
    requireReason: maybe(fc.constantFrom<unknown>(true, false, "yes", 1, null)),
    autoSet: maybe(fc.dictionary(text, fc.constantFrom<unknown>("principal.user", "principal.tenant", "principal", "principal.roles", "", 1), { maxKeys: 3 })),
    maxRowsRead: maybe(number),
    include: maybe(fc.dictionary(text, fc.constantFrom<unknown>({}, { fields: ["id"] }, { fields: [] }, { fields: ["9"] }, { limit: 1 }), { maxKeys: 2 })),
    maxIncludeDepth: maybe(fc.oneof(number, fc.constantFrom(1, 8, 9))),
  },
  { requiredKeys: [] },
);
const argPattern = fc.oneof(text, fc.record({ prefix: text }), fc.constant({ any: true }), fc.constant({ any: false }), fc.constant({ prefix: "a", any: true }));
const execRule = fc.record(
  { program: path, args: maybe(list(argPattern)), allowExtraArgs: maybe(fc.boolean()), cwd: maybe(path), env: maybe(list(fc.constantFrom("HOME", "LD_PRELOAD", "1BAD", "A-B", ""))) },
  { requiredKeys: [] },
);
const approvalRule = fc.record(
  {
    tools: maybe(list(text)),
    actions: maybe(list(fc.constantFrom("tool.call", "db.create", "fs.write", "http.request", "db.drop", "exec"))),
    input: maybe(fc.dictionary(text, argPattern, { maxKeys: 2 })),
    approvers: maybe(list(fc.constantFrom("alice", "bob", "role:admin", "role:", "", "a\0b"))),
    quorum: maybe(fc.oneof(number, fc.constantFrom(1, 2, 3, 16, 17))),
  },
  { requiredKeys: [] },
);
const conditions = {
  expiresAt: maybe(number),
  maxUses: maybe(number),
  budget: maybe(fc.record({ calls: maybe(number), cost: maybe(number), extra: sometimesExtra }, { requiredKeys: [] })),
  tenants: maybe(list(text)),
  rates: maybe(
    list(
      fc.record(
        {
          per: maybe(fc.oneof(number, fc.constantFrom(1, 60, 86400, 31 * 86400, 31 * 86400 + 1))),
          calls: maybe(number),
          cost: maybe(number),
          tools: maybe(list(text)),
          actions: maybe(list(fc.constantFrom("tool.call", "db.create", "db.drop"))),
          extra: sometimesExtra,
        },
        { requiredKeys: [] },
      ),
    ),
  ),
};
const edgyGrant = fc.record(
  { ...conditions, tools: maybe(list(text)), fs: maybe(list(fsRule)), http: maybe(list(httpRule)), db: maybe(list(dbRule)), exec: maybe(list(execRule)), audit: maybe(list(fc.constantFrom("read", "write", "READ"))), approval: maybe(list(approvalRule)), extra: sometimesExtra },
  { requiredKeys: [] },
);

const RULE_KEYS: Readonly<Record<string, readonly string[]>> = {
  fs: ["path", "ops", "subtree", "extra"],
  http: ["origin", "methods", "pathPrefix", "allowPrivateNetwork", "addresses"],
  db: ["model", "ops", "fields", "scope", "fieldActions", "rows", "maxRows", "immutable", "required", "requireFilter", "requireReason", "autoSet", "maxRowsRead", "include", "maxIncludeDepth"],
  exec: ["program", "args", "allowExtraArgs", "cwd", "env"],
  approval: ["tools", "actions", "approvers", "quorum", "input"],
};

/** Well-formed write policies and row totals of a db rule, each present or not. */
const policies = fc.record(
  {
    immutable: fc.array(fc.constantFrom("id", "t", "name"), { maxLength: 2 }),
    required: fc.array(fc.constantFrom("id", "t", "name"), { maxLength: 2 }),
    requireFilter: fc.boolean(),
    requireReason: fc.boolean(),
    autoSet: fc.dictionary(fc.constantFrom("t", "owner"), fc.constantFrom("principal.user", "principal.tenant"), { maxKeys: 2 }),
    maxRowsRead: fc.integer({ min: 1, max: 1000 }),
  },
  { requiredKeys: [] },
);

/** A well-formed grant (as the token tests make them) whose db rules also carry write policies. */
const wellFormed = fc.tuple(validGrant, fc.array(policies, { minLength: 2, maxLength: 2 })).map(([g, extra]) => {
  const db = g.db;
  return db === undefined ? g : { ...g, db: db.map((rule, i) => ({ ...rule, ...extra[i % extra.length] })) };
});

/** A well-formed grant with one value, at the top or in one rule, replaced by a value near an edge. */
const mutatedGrant = fc
  .tuple(wellFormed, fc.nat(), fc.nat(), fc.oneof(text, path, number, odd, fc.constantFrom<unknown>("GET", "chmod", "read", ["read"], [], { any: true }, { t: 1 })))
  .map(([g, where, which, value]) => {
    const copy = structuredClone(g) as Record<string, unknown>;
    const domains = Object.keys(RULE_KEYS).filter((d) => Array.isArray(copy[d]) && (copy[d] as unknown[]).length > 0);
    const domain = domains[where % (domains.length + 1)];
    if (domain === undefined) {
      const keys = ["expiresAt", "maxUses", "budget", "tenants", "tools", "fs", "http", "db", "exec", "audit", "approval", "extra"];
      copy[keys[which % keys.length] ?? "extra"] = value;
    } else {
      const rule = (copy[domain] as Record<string, unknown>[])[0] as Record<string, unknown>;
      const keys = RULE_KEYS[domain] ?? [];
      rule[keys[which % keys.length] ?? "extra"] = value;
    }
    return copy;
  });

/** Well-formed grants (as the token tests make them, and with write policies), the same with one value broken, and grants near the edges of every rule. */
const grant = fc.oneof(validGrant, wellFormed, mutatedGrant, edgyGrant);

/** Drops keys whose value is undefined, as a caller writing the object literal would; sometimes keeps one to test that too. */
const written = (v: unknown, keepUndefined: boolean): unknown => {
  if (keepUndefined || typeof v !== "object" || v === null) return v;
  if (Array.isArray(v)) return v.map((x) => written(x, false));
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, written(x, false)]));
};

function verdict(parse: (v: unknown) => unknown, value: unknown): { ok: unknown } | { rejected: true } {
  try {
    return { ok: parse(value) };
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInput);
    return { rejected: true };
  }
}

function deeplyFrozen(v: unknown): boolean {
  if (typeof v !== "object" || v === null) return true;
  return Object.isFrozen(v) && Object.values(v).every(deeplyFrozen);
}

describe("the grant fast path agrees with the schemas", () => {
  it("never accepts a grant the schema rejects, and builds exactly what the schema builds", () => {
    let fast = 0;
    const options = new Set<string>();
    fc.assert(
      fc.property(grant, fc.boolean(), (g, keepUndefined) => {
        const value = written(g, keepUndefined);
        const quick = fastParseGrant(value);
        if (quick === null) return;
        fast += 1;
        for (const rule of quick.db ?? []) for (const key of Object.keys(rule)) options.add(key);
        expect(verdict(schemaParseGrant, value)).toEqual({ ok: quick });
        expect(deeplyFrozen(quick)).toBe(true);
      }),
      { numRuns: 2000 },
    );
    // A third of the grants are well-formed, and many one-value changes still are: they take the fast path.
    expect(fast).toBeGreaterThan(500);
    // The write policies the fast path reads were among what it accepted, so its agreement on them was tested.
    for (const option of ["immutable", "required", "requireFilter", "requireReason", "autoSet", "maxRowsRead"]) expect(options).toContain(option);
  });

  it("never accepts conditions the schema rejects", () => {
    fc.assert(
      fc.property(fc.record({ ...conditions, extra: sometimesExtra }, { requiredKeys: [] }), (c) => {
        const value = written(c, false);
        const quick = fastParseConditions(value);
        if (quick !== null) expect(verdict(parseConditions, value)).toEqual({ ok: quick });
      }),
      { numRuns: 1000 },
    );
  });

  it("reads a getter once, so what it checked is what it keeps", () => {
    let reads = 0;
    const grant = Object.defineProperty({}, "tools", {
      get: () => (++reads === 1 ? ["search"] : ["search", "delete_everything"]),
      enumerable: true,
    });
    expect(fastParseGrant(grant)).toEqual({ tools: ["search"] });
    expect(reads).toBe(1);
  });

  it("leaves Proxies, inherited keys and non-plain objects to the schema", () => {
    const tools = ["a"];
    expect(fastParseGrant(new Proxy({ tools }, {}))).toBeNull();
    expect(fastParseGrant(Object.create({ tools }) as unknown)).toBeNull();
    expect(fastParseGrant(new (class Grantish {
      tools = tools;
    })())).toBeNull();
    expect(fastParseGrant({ tools: new Proxy(tools, {}) })).toBeNull();
    expect(fastParseGrant({ tools: Array.from({ length: 1025 }, () => "a") })).toBeNull();
  });
});

describe("a hardened grant, read once", () => {
  const harden = <T>(v: T): T => {
    if (typeof v === "object" && v !== null) {
      for (const inner of Object.values(v)) harden(inner);
      Object.freeze(v);
    }
    return v;
  };
  const mint = createMint({ issuer: "hardened", policy: () => ({ tools: ["a", "b"], fs: [{ path: "/srv", ops: ["read", "write"] }] }) });
  const root = mint.issue({ id: "u" });

  it("gives the same parse at every use, and links that decide as the first did", () => {
    const g = harden({ tools: ["a"], fs: [{ path: "/srv/data", ops: ["read" as const] }] });
    expect(parseGrant(g)).toBe(parseGrant(g));
    const [one, two] = [narrow(root, g), narrow(root, g)];
    for (const cap of [one, two]) {
      expect(check(cap, { action: "tool.call", tool: "a" }).allowed).toBe(true);
      expect(check(cap, { action: "tool.call", tool: "b" }).allowed).toBe(false);
      expect(check(cap, { action: "fs.write", path: "/srv/data/x" }).allowed).toBe(false);
    }
  });

  it.each([
    ["a frozen grant holding an array that is not", () => Object.freeze({ tools: ["a"] })],
    ["a grant frozen only deep down", () => ({ tools: Object.freeze(["a"]) })],
  ])("reads %s again at every use, so a change to it is what the next link gets", (_name, make) => {
    const g = make();
    expect(check(narrow(root, g), { action: "tool.call", tool: "a" }).allowed).toBe(true);
    const tools = g.tools as string[];
    if (Object.isFrozen(tools)) (g as { tools: unknown }).tools = ["b"];
    else tools[0] = "b";
    const later = narrow(root, g);
    expect(check(later, { action: "tool.call", tool: "a" }).allowed).toBe(false);
    expect(check(later, { action: "tool.call", tool: "b" }).allowed).toBe(true);
  });

  it("does not keep a frozen grant whose value comes from a getter", () => {
    let reads = 0;
    const g = Object.freeze(Object.defineProperty({}, "tools", { get: () => (++reads === 1 ? ["a"] : ["b"]), enumerable: true }));
    const first = narrow(root, g as never);
    const second = narrow(root, g as never);
    expect(check(first, { action: "tool.call", tool: "a" }).allowed).toBe(true);
    expect(check(second, { action: "tool.call", tool: "b" }).allowed).toBe(true);
    expect(reads).toBe(2);
  });

  it("refuses a hardened grant that is not valid, at every use", () => {
    const bad = harden({ tools: ["a"], fs: [{ path: "relative", ops: ["read"] }] });
    expect(() => narrow(root, bad as never)).toThrow(InvalidInput);
    expect(() => narrow(root, bad as never)).toThrow(InvalidInput);
  });

  it("hardened or not, a generated grant narrows to the same decisions", () => {
    fc.assert(
      fc.property(validGrant, (g) => {
        const plain = structuredClone(g);
        const frozen = harden(structuredClone(g));
        const a = narrow(root, plain as never);
        const b = narrow(root, frozen as never);
        const c = narrow(root, frozen as never);
        for (const request of [
          { action: "tool.call" as const, tool: "a" },
          { action: "fs.read" as const, path: "/srv/data/x" },
          { action: "fs.write" as const, path: "/srv/x" },
        ]) {
          const expected = check(a, request).allowed;
          expect(check(b, request).allowed).toBe(expected);
          expect(check(c, request).allowed).toBe(expected);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("a link's grant, once a capability shows it", () => {
  const mint = createMint({ issuer: "shown", policy: () => ({ tools: ["a", "b"], fs: [{ path: "/srv", ops: ["read", "write"] }] }) });

  it("is parsed already: parseGrant returns it as it is, from the capability and from its lineage", () => {
    const cap = narrow(mint.issue({ id: "u" }), { tools: ["a"], fs: [{ path: "/srv/data", ops: ["read"] }] });
    const shown = cap.grant;
    if (shown === null) throw new Error("the link narrows, so it has a grant");
    expect(parseGrant(shown)).toBe(shown);
    const inLineage = cap.lineage.at(-1)?.grant;
    expect(inLineage).toBe(shown);
    expect(Object.isFrozen(shown)).toBe(true);
    // Narrowing with it again decides as the link it came from.
    const again = narrow(cap, shown);
    expect(check(again, { action: "tool.call", tool: "a" }).allowed).toBe(true);
    expect(check(again, { action: "fs.write", path: "/srv/data/x" }).allowed).toBe(false);
  });

  it("a copy of it that can still change is read afresh, never taken for the shown one", () => {
    const cap = narrow(mint.issue({ id: "u" }), { tools: ["a"] });
    const copy = structuredClone(cap.grant) as { tools: string[] };
    const parsed = parseGrant(copy);
    expect(parsed).not.toBe(copy);
    copy.tools.push("b");
    expect(parsed.tools).toEqual(["a"]);
  });
});
