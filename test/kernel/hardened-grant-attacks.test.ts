import { afterEach, describe, expect, it } from "vitest";
import { check, narrow } from "../../src/kernel/capability.ts";
import { isSharedGrant, parseGrant } from "../../src/kernel/grant.ts";
import { createMint } from "../../src/kernel/mint.ts";
import type { Capability } from "../../src/index.ts";

/*
 * parseGrant keeps the parse of a hardened grant (deep-frozen, data
 * properties only) by identity, and node.ts keeps the compiled rules of that
 * parse. Each row is a grant that looks hardened but can still read
 * differently (a hole an array inherits or a proxy answers, a getter that
 * freezes its object while it is read, a proxy or prototype reached past
 * the frozen data): after it changes to read narrower, the next narrowing
 * must get the narrower reading, never the wider one a kept parse remembers.
 * The last rows read grants while Object.prototype is polluted: a rule that
 * leaves out a required field is refused, never completed from the prototype.
 */
const mint = createMint({
  issuer: "hardened-attacks",
  policy: () => ({ tools: ["read", "admin"], db: [{ model: "Doc", ops: ["read"] }] }),
});
const root = mint.issue({ id: "u" });
const reaches = (cap: Capability, tool: string): boolean => check(cap, { action: "tool.call", tool }).allowed;
/** Whether a narrowing with `g` reaches the admin tool; a grant that cannot be read is refused, which reaches nothing. */
const adminThrough = (g: unknown): boolean => {
  try {
    return reaches(narrow(root, g as never), "admin");
  } catch {
    return false;
  }
};

type Row = readonly [name: string, make: () => { grant: unknown; narrowDown: () => void }];

const rows: readonly Row[] = [
  [
    "a frozen array with a hole that a proxy answers (admin, then read)",
    () => {
      let answer = "admin";
      const tools = new Proxy(Object.freeze(new Array<string>(1)), { get: (t, k, r) => (k === "0" ? answer : Reflect.get(t, k, r)) as unknown });
      return { grant: Object.freeze({ tools }), narrowDown: () => void (answer = "read") };
    },
  ],
  [
    "a frozen array with a hole, inheriting from a mutable array",
    () => {
      const inherited = ["admin"];
      const tools = Object.freeze(Object.setPrototypeOf(new Array<string>(1), inherited) as string[]);
      return { grant: Object.freeze({ tools }), narrowDown: () => void (inherited[0] = "read") };
    },
  ],
  [
    "a frozen array with a hole, Array.prototype polluted while it is first read",
    () => {
      const tools = Object.freeze(new Array<string>(1));
      (Array.prototype as unknown as Record<number, string>)[0] = "admin";
      return { grant: Object.freeze({ tools }), narrowDown: () => void ((Array.prototype as unknown as Record<number, string>)[0] = "read") };
    },
  ],
  [
    "a getter that answers admin, then makes itself a frozen data property (read) and freezes its object",
    () => {
      const g: Record<string, unknown> = {};
      Object.defineProperty(g, "tools", {
        configurable: true,
        enumerable: true,
        get() {
          Object.defineProperty(g, "tools", { value: Object.freeze(["read"]), enumerable: true });
          Object.freeze(g);
          return ["admin"];
        },
      });
      return { grant: g, narrowDown: () => undefined };
    },
  ],
  [
    "a proxy whose get trap answers admin once, then freezes its target holding read",
    () => {
      const target: Record<string, unknown> = { tools: ["read"] };
      let first = true;
      const grant = new Proxy(target, {
        get(t, k, r) {
          if (k === "tools" && first) {
            first = false;
            Object.freeze(t.tools);
            Object.freeze(t);
            return ["admin"];
          }
          return Reflect.get(t, k, r) as unknown;
        },
      });
      return { grant, narrowDown: () => undefined };
    },
  ],
];

afterEach(() => {
  delete (Array.prototype as unknown as Record<number, string>)[0];
});

describe("a grant that looks hardened but can still read differently is not kept", () => {
  it.each(rows)("%s: the next narrowing reads it anew", (_name, make) => {
    const { grant, narrowDown } = make();
    adminThrough(grant);
    narrowDown();
    // Whatever the first narrowing read, the next ones read what the grant says now: read only.
    expect(adminThrough(grant)).toBe(false);
    expect(adminThrough(grant)).toBe(false);
  });
});

describe("what a hardened grant cannot be made to say", () => {
  it("a proxy over a frozen target cannot answer another value for a frozen property (the language refuses)", () => {
    const g = new Proxy(Object.freeze({ tools: Object.freeze(["read"]) }), { get: () => ["admin"] });
    expect(() => narrow(root, g as never)).toThrow(TypeError);
    expect(adminThrough(g)).toBe(false);
  });

  it("a proxy answering keys its frozen target does not have gives nothing: only own keys are read", () => {
    const g = new Proxy(Object.freeze({ tools: Object.freeze(["read"]) }), { get: (t, k, r) => (k === "db" ? [{ model: "Doc", ops: ["read"] }] : Reflect.get(t, k, r)) as unknown });
    const cap = narrow(root, g as never);
    expect(reaches(cap, "admin")).toBe(false);
    expect(check(cap, { action: "db.read", model: "Doc", fields: ["id"], scope: {} }).allowed).toBe(false);
  });

  it("a frozen grant inheriting tools from a mutable prototype reads none of them", () => {
    const proto: { tools?: string[] } = { tools: ["admin"] };
    const g = Object.freeze(Object.create(proto) as object);
    expect(adminThrough(g)).toBe(false);
    proto.tools = ["read", "admin"];
    expect(adminThrough(g)).toBe(false);
  });

  it("a symbol-keyed or non-enumerable mutable part keeps a frozen grant from being kept, and is never read", () => {
    const list = ["admin"];
    const bySymbol = Object.freeze({ tools: Object.freeze(["read"]), [Symbol("extra")]: list });
    const hidden = Object.freeze(Object.defineProperty({ tools: Object.freeze(["read"]) }, "db", { value: list, enumerable: false }));
    for (const g of [bySymbol, hidden]) {
      expect(adminThrough(g)).toBe(false);
      expect(isSharedGrant(parseGrant(g))).toBe(false);
    }
  });

  it("the kept parse cannot be changed by whoever receives it", () => {
    const g = Object.freeze({ tools: Object.freeze(["read"]) });
    const parsed = parseGrant(g) as { tools: string[] };
    expect(isSharedGrant(parsed)).toBe(true);
    expect(() => parsed.tools.push("admin")).toThrow(TypeError);
    expect(() => Object.assign(parsed, { tools: ["admin"] })).toThrow(TypeError);
    expect(adminThrough(g)).toBe(false);
  });

  it("a hardened grant naming the principal binds it per principal, though its compiled rules are shared", () => {
    const g = Object.freeze({ db: Object.freeze([Object.freeze({ model: "Doc", ops: Object.freeze(["read"] as const), scope: Object.freeze({ owner: Object.freeze({ principal: "user" as const }) }) })]) });
    const [alice, bob] = [narrow(mint.issue({ id: "alice" }), g as never), narrow(mint.issue({ id: "bob" }), g as never)];
    const read = (owner: string) => ({ action: "db.read" as const, model: "Doc", fields: ["id"], scope: { owner } });
    expect(check(alice, read("alice")).allowed).toBe(true);
    expect(check(alice, read("bob")).allowed).toBe(false);
    expect(check(bob, read("bob")).allowed).toBe(true);
    expect(check(bob, read("alice")).allowed).toBe(false);
  });
});

describe("a grant read while Object.prototype is polluted", () => {
  const polluted = { path: "/", origin: "https://evil.example", methods: ["GET"], model: "User", ops: ["read", "write"], program: "/bin/sh", target: "link", approvers: ["mallory"], per: 60 };
  const P = Object.prototype as Record<string, unknown>;

  it.each([
    ["an fs rule without its path", { fs: [{ ops: ["read"] }] }],
    ["an http rule without its origin", { http: [{ methods: ["GET"] }] }],
    ["a db rule without its model", { db: [{ ops: ["read"] }] }],
    ["an exec rule without its program", { exec: [{ args: ["x"] }] }],
    ["a revoke rule without its target", { revoke: [{ ids: ["x"] }] }],
    ["a rate without its window", { rates: [{ calls: 1 }] }],
  ])("%s is refused, not completed from the prototype", (_name, grant) => {
    Object.assign(P, polluted);
    try {
      expect(() => parseGrant(grant)).toThrow(/invalid grant/);
    } finally {
      for (const key of Object.keys(polluted)) Reflect.deleteProperty(P, key);
    }
  });

  it("a root whose policy leaves out a rule's path is not minted reading everything", () => {
    const sloppy = createMint({ issuer: "sloppy", policy: () => ({ fs: [{ ops: ["read"] }] }) as never });
    P.path = "/";
    try {
      expect(() => sloppy.issue({ id: "u" })).toThrow(/invalid grant/);
    } finally {
      delete P.path;
    }
  });
});

/** Whether `value` and everything reachable from it is frozen, with data properties only. */
function deeplyFrozen(value: unknown, seen = new Set<object>()): boolean {
  if (typeof value !== "object" || value === null || seen.has(value)) return true;
  seen.add(value);
  if (!Object.isFrozen(value)) return false;
  return Reflect.ownKeys(value).every((k) => {
    const d = Reflect.getOwnPropertyDescriptor(value, k);
    return d !== undefined && "value" in d && deeplyFrozen(d.value, seen);
  });
}

describe("a link's grant as it leaves the kernel (parseGrant then takes it as it is)", () => {
  const rich = {
    tools: ["read", "admin"],
    db: [{ model: "Doc", ops: ["read"], scope: { owner: { principal: "user" } }, rows: { all: [{ field: "owner", op: "eq", value: { principal: "user" } }, { not: { field: "x", op: "in", value: [1, 2] } }] }, fieldActions: { secret: { mask: "***" } } }],
    rates: [{ per: 60, calls: 5 }],
    budget: { calls: 3 },
  };

  it("is deep-frozen data wherever it leaves: a capability's grant, its lineage, a shadow link's summary, a principal-bound grant", async () => {
    const { shadow } = await import("../../src/kernel/capability.ts");
    const cap = narrow(mint.issue({ id: "alice" }), rich as never);
    const shadowed = shadow(cap, { tools: ["read"] });
    const out = [cap.grant, ...cap.lineage.map((l) => l.grant), ...shadowed.lineage.map((l) => (l as { shadow?: unknown }).shadow)].filter((g) => g !== null && g !== undefined);
    expect(out.length).toBeGreaterThanOrEqual(4);
    for (const g of out) {
      expect(deeplyFrozen(g)).toBe(true);
      expect(parseGrant(g)).toBe(g);
    }
    // The principal was bound into the grant that left: it names alice, and no write can make it name anyone else.
    const bound = cap.grant as unknown as { db: { scope: Record<string, unknown> }[] };
    expect(bound.db[0]?.scope.owner).toBe("alice");
    expect(() => Object.assign(bound.db[0]?.scope ?? {}, { owner: "bob" })).toThrow(TypeError);
  });

  it("what a caller passed is never what leaves: mutating the input (or a frozen grant's unfrozen nested array) afterwards changes nothing", () => {
    const tools = ["read"];
    const input = Object.freeze({ tools });
    const cap = narrow(root, input as never);
    expect(cap.grant).not.toBe(input);
    tools.push("admin");
    expect(parseGrant(input)).not.toBe(cap.grant);
    expect((cap.grant as { tools: string[] }).tools).toEqual(["read"]);
    expect(reaches(narrow(root, cap.grant as never), "admin")).toBe(false);
    // The input, read anew, now says admin: that reading is its own, and the link made before keeps read only.
    expect(reaches(cap, "admin")).toBe(false);
  });

  it("a grant made in another realm (node:vm) is read into this realm's frozen data, never kept as it is", async () => {
    const vm = await import("node:vm");
    const foreign = vm.runInNewContext("Object.freeze({ tools: Object.freeze(['read']) })") as object;
    const mutable = vm.runInNewContext("({ tools: ['read'] })") as { tools: string[] };
    for (const g of [foreign, mutable]) {
      const parsed = parseGrant(g);
      expect(parsed).not.toBe(g);
      expect(Object.getPrototypeOf(parsed)).not.toBe(Object.getPrototypeOf(g));
      expect(deeplyFrozen(parsed)).toBe(true);
    }
    mutable.tools.push("admin");
    expect(reaches(narrow(root, mutable as never), "admin")).toBe(true);
    expect(reaches(narrow(root, parseGrant(foreign) as never), "admin")).toBe(false);
  });

  it("a grant read while Object.prototype names more tools leaves holding only its own", () => {
    const P = Object.prototype as Record<string, unknown>;
    P.tools = ["admin"];
    P.db = [{ model: "Doc", ops: ["read"] }];
    try {
      const cap = narrow(root, { budget: { calls: 1 } } as never);
      expect(Object.hasOwn(cap.grant ?? {}, "tools")).toBe(false);
      // A grant naming no tools reaches none: the prototype's list is not read as its own.
      expect(reaches(cap, "admin")).toBe(false);
      expect(reaches(narrow(root, cap.grant as never), "admin")).toBe(false);
      const again = narrow(root, {} as never);
      expect(Object.keys(parseGrant(again.grant ?? {}))).toEqual([]);
    } finally {
      delete P.tools;
      delete P.db;
    }
  });
});
