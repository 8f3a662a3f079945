import { afterEach, describe, expect, it } from "vitest";
import {
  assertAuthorized,
  authorize,
  Capability,
  check,
  clockTime,
  createManualClock,
  createMint,
  expiresAt,
  forSeconds,
  isCapability,
  narrow,
  narrowToRow,
  NotACapability,
  onlyTool,
  readOnly,
  restrict,
  revocable,
  revocationSignal,
  singleUse,
  type Decision,
  type Grant,
  type Request,
} from "../../src/index.ts";

/*
 * Invariant 1: nothing outside the kernel can produce an object the kernel
 * accepts as a capability. Every forgery below is offered to every entry
 * point, and each one must answer NotACapability.
 */

const ROOT_GRANT: Grant = {
  tools: ["search", "read_file"],
  fs: [{ path: "/data", ops: ["read", "list"] }],
  http: [{ origin: "https://api.example.com", methods: ["GET"] }],
  db: [{ model: "User", ops: ["read"], scope: { tenantId: 42 } }],
  exec: [{ program: "/usr/bin/git", args: ["status"] }],
};

function realCapability() {
  const mint = createMint({ issuer: "forgery-test", clock: createManualClock(1_000_000), policy: () => ROOT_GRANT });
  return mint.issue({ id: "alice", tenants: ["acme"] });
}

const READ: Request = { action: "fs.read", path: "/data/report.csv" };

/** Every getter of Capability.prototype, copied as values onto a plain object. */
function copyGetters(cap: Capability): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, desc] of Object.entries(Object.getOwnPropertyDescriptors(Capability.prototype))) {
    if (desc.get) out[key] = desc.get.call(cap) as unknown;
  }
  return out;
}

class Evil extends Capability {
  constructor(token: symbol) {
    super(token, {} as never);
  }
  authorize(): Decision {
    return { allowed: true, capabilityId: "evil" };
  }
}

const FORGERIES: readonly { readonly name: string; readonly make: (real: Capability) => unknown }[] = [
  { name: "JSON round trip of its visible data", make: (real) => JSON.parse(JSON.stringify(copyGetters(real))) as unknown },
  { name: "structuredClone", make: (real) => structuredClone(real) },
  // eslint-disable-next-line @typescript-eslint/no-misused-spread -- losing the prototype is the forgery under test
  { name: "object spread", make: (real) => ({ ...real }) },
  { name: "Object.assign onto Capability.prototype", make: (real) => Object.assign(Object.create(Capability.prototype) as object, real) },
  { name: "Object.create(Capability.prototype)", make: () => Object.create(Capability.prototype) as unknown },
  { name: "Proxy around a real capability", make: (real) => new Proxy(real, {}) },
  {
    name: "Proxy that forwards every trap to a real capability",
    make: (real) =>
      new Proxy(real, {
        get: (t, k) => Reflect.get(t, k, t) as unknown,
        has: (t, k) => Reflect.has(t, k),
        getPrototypeOf: () => Capability.prototype,
      }),
  },
  { name: "Proxy around a plain object claiming Capability.prototype", make: () => new Proxy({}, { getPrototypeOf: () => Capability.prototype }) },
  { name: "instance of a subclass built without its constructor", make: () => Object.create(Evil.prototype) as unknown },
  { name: "look-alike plain object copying all getters", make: (real) => copyGetters(real) },
  {
    name: "look-alike with Capability.prototype as its prototype",
    make: (real) => Object.setPrototypeOf(copyGetters(real), Capability.prototype) as unknown,
  },
  { name: "null", make: () => null },
  { name: "a string id", make: (real) => real.id },
  { name: "a function", make: () => () => true },
];

type EntryPoint = readonly [string, (fake: never) => unknown];

function getter(name: string): (fake: object) => unknown {
  if (Object.getOwnPropertyDescriptor(Capability.prototype, name)?.get === undefined) throw new Error(`no getter ${name}`);
  // Reflect.get with a receiver runs the prototype's getter with `this` bound to the forgery.
  return (fake) => Reflect.get(Capability.prototype, name, fake) as unknown;
}

const proto = Capability.prototype;
const ENTRY_POINTS: readonly EntryPoint[] = [
  ["authorize", (f) => authorize(f, READ)],
  ["authorize with cost", (f) => authorize(f, READ, { cost: 1 })],
  ["check", (f) => check(f, READ)],
  ["assertAuthorized", (f) => { assertAuthorized(f, READ); }],
  ["narrow", (f) => narrow(f, { tools: ["search"] })],
  ["restrict", (f) => restrict(f, { maxUses: 1 })],
  ["revocable", (f) => revocable(f)],
  ["revocationSignal", (f) => revocationSignal(f)],
  ["expiresAt", (f) => expiresAt(f)],
  ["clockTime", (f) => clockTime(f)],
  ["narrowToRow", (f) => narrowToRow(f, { model: "User", id: 7 })],
  ["onlyTool", (f) => onlyTool(f, "search")],
  ["readOnly", (f) => readOnly(f)],
  ["forSeconds", (f) => forSeconds(f, 60)],
  ["singleUse", (f) => singleUse(f)],
  ["Capability.prototype.toJSON.call", (f) => proto.toJSON.call(f)],
  ...["id", "hash", "parentId", "depth", "grant", "conditions", "mint", "lineage"].map(
    (name): EntryPoint => [`Capability.prototype getter ${name}`, getter(name)],
  ),
];

describe("forgery table: every forgery is refused by every kernel entry point", () => {
  for (const forgery of FORGERIES) {
    describe(forgery.name, () => {
      it("is not recognized by isCapability", () => {
        expect(isCapability(forgery.make(realCapability()))).toBe(false);
      });
      for (const [entry, call] of ENTRY_POINTS) {
        it(`${entry} throws NotACapability`, () => {
          const fake = forgery.make(realCapability()) as never;
          expect(() => call(fake)).toThrow(NotACapability);
        });
      }
    });
  }

  it("the table covers every method and getter of Capability.prototype", () => {
    const covered = new Set(ENTRY_POINTS.map(([name]) => name.replace(/^Capability\.prototype (getter )?|\.call$/g, "").replace(/^Capability\.prototype\./, "")));
    for (const key of Reflect.ownKeys(Capability.prototype)) {
      if (key === "constructor" || typeof key === "symbol") continue;
      expect(covered, `Capability.prototype.${key} is not in the entry-point table`).toContain(key);
    }
  });

  it("the real capability that the forgeries copy is accepted everywhere", () => {
    const real = realCapability();
    expect(isCapability(real)).toBe(true);
    expect(check(real, READ).allowed).toBe(true);
    for (const [entry, call] of ENTRY_POINTS) {
      if (entry.endsWith("toJSON.call")) continue;
      expect(() => call(realCapability() as never), entry).not.toThrow();
    }
  });
});

describe("construction", () => {
  it("new Capability with a made-up symbol throws NotACapability", () => {
    expect(() => new Capability(Symbol("agentcap.construct"), {} as never)).toThrow(NotACapability);
    expect(() => new Capability(Symbol.for("agentcap.construct"), {} as never)).toThrow(NotACapability);
  });

  it("a subclass cannot be constructed, directly or through Reflect.construct", () => {
    expect(() => new Evil(Symbol("agentcap.construct"))).toThrow(NotACapability);
    expect(() => {
      Reflect.construct(Capability, [Symbol(), {}], Evil);
    }).toThrow(NotACapability);
  });

  it("a subclass's overridden authorize never reaches the kernel's authorize", () => {
    const fake = Object.create(Evil.prototype) as Evil;
    expect(fake.authorize().allowed).toBe(true); // its own method says yes...
    expect(() => authorize(fake, READ)).toThrow(NotACapability); // ...the kernel does not
    expect(isCapability(fake)).toBe(false);
  });

  it("structuredClone and spread carry no state at all", () => {
    const real = realCapability();
    expect(Object.keys(structuredClone(real))).toEqual([]);
    // eslint-disable-next-line @typescript-eslint/no-misused-spread -- losing the prototype is the point
    expect(Object.keys({ ...real })).toEqual([]);
  });
});

describe("immutability", () => {
  it("capabilities are frozen at every depth", () => {
    const root = realCapability();
    const child = narrow(root, { tools: ["search"] });
    const forwarder = revocable(child).capability;
    for (const cap of [root, child, forwarder, restrict(child, { maxUses: 2 })]) {
      expect(Object.isFrozen(cap)).toBe(true);
      expect(() => {
        (cap as unknown as { extra: number }).extra = 1;
      }).toThrow(TypeError);
    }
  });

  it("grants, conditions, mint records and lineage are frozen data", () => {
    const cap = narrow(realCapability(), { fs: [{ path: "/data/a", ops: ["read"] }], maxUses: 3 });
    const grant = cap.grant;
    expect(grant).not.toBeNull();
    expect(Object.isFrozen(grant)).toBe(true);
    expect(Object.isFrozen(grant?.fs?.[0])).toBe(true);
    expect(Object.isFrozen(grant?.fs?.[0]?.ops)).toBe(true);
    expect(Object.isFrozen(cap.conditions)).toBe(true);
    expect(Object.isFrozen(cap.mint)).toBe(true);
    expect(Object.isFrozen(cap.mint.tenants)).toBe(true);
    expect(Object.isFrozen(cap.lineage)).toBe(true);
    for (const link of cap.lineage) expect(Object.isFrozen(link)).toBe(true);
  });

  it("the grant given to narrow is copied: mutating the caller's object later changes nothing", () => {
    const mine = { fs: [{ path: "/data/a", ops: ["read"] as ("read" | "write")[] }] };
    const cap = narrow(realCapability(), mine);
    mine.fs[0] = { path: "/", ops: ["read", "write"] };
    expect(check(cap, { action: "fs.read", path: "/data/b" }).allowed).toBe(false);
    expect(cap.grant?.fs?.[0]?.path).toBe("/data/a");
  });

  it("Capability and Capability.prototype are frozen; overwriting authorize throws and has no effect", () => {
    expect(Object.isFrozen(Capability)).toBe(true);
    expect(Object.isFrozen(Capability.prototype)).toBe(true);
    const original = Object.getOwnPropertyDescriptor(Capability.prototype, "authorize")?.value as unknown;
    const allowAll = (): Decision => ({ allowed: true, capabilityId: "x" });
    expect(() => {
      (Capability.prototype as unknown as { authorize: unknown }).authorize = allowAll;
    }).toThrow(TypeError);
    expect(() => Object.defineProperty(Capability.prototype, "check", { value: allowAll })).toThrow(TypeError);
    expect(() => {
      Object.setPrototypeOf(Capability.prototype, { authorize: allowAll });
    }).toThrow(TypeError);
    expect(() => {
      Object.setPrototypeOf(Capability, function Other() {});
    }).toThrow(TypeError);
    expect(Object.getOwnPropertyDescriptor(Capability.prototype, "authorize")?.value).toBe(original);
    const cap = realCapability();
    expect(authorize(cap, { action: "fs.write", path: "/data/x" }).allowed).toBe(false);
  });

  it("JSON.stringify of a capability throws NotACapability, even nested in other data", () => {
    const cap = realCapability();
    expect(() => JSON.stringify(cap)).toThrow(NotACapability);
    expect(() => JSON.stringify({ tool: "search", cap })).toThrow(NotACapability);
    expect(() => JSON.stringify([revocable(cap).capability])).toThrow(NotACapability);
  });
});

describe("no public way reaches a parent capability", () => {
  /** Every value reachable from `value` through properties, getters and arrays (not functions' internals). */
  function reachable(value: unknown, seen = new Set<unknown>()): unknown[] {
    if (typeof value !== "object" || value === null || seen.has(value)) return [];
    seen.add(value);
    const out: unknown[] = [];
    const keys = new Set<string | symbol>(Reflect.ownKeys(value));
    if (value instanceof Capability) for (const k of Reflect.ownKeys(Capability.prototype)) keys.add(k);
    for (const k of keys) {
      if (k === "constructor") continue;
      let v: unknown;
      try {
        v = Reflect.get(value, k, value);
      } catch {
        continue; // toJSON-like throwers
      }
      if (typeof v === "function") continue;
      out.push(v, ...reachable(v, seen));
    }
    return out;
  }

  it("only parentId names the parent; nothing reachable from a child is a capability", () => {
    const root = realCapability();
    const { capability: middle } = revocable(narrow(root, { tools: ["search"] }));
    const child = restrict(narrow(middle, { tools: ["search"] }), { maxUses: 1 });
    expect(child.parentId).toBe(child.lineage.at(-2)?.id);
    expect(root.parentId).toBeNull();
    expect(child.lineage.map((l) => l.id)).toContain(root.id);
    const values = reachable(child);
    expect(values.length).toBeGreaterThan(10);
    for (const v of values) expect(isCapability(v)).toBe(false);
    expect(Object.keys(child)).toEqual([]);
    expect(Object.getOwnPropertySymbols(child)).toEqual([]);
  });

  it("revocable() returns only the forwarder and its switches, never the original", () => {
    const root = realCapability();
    const r = revocable(root);
    expect(Object.keys(r).sort()).toEqual(["capability", "isRevoked", "revoke"]);
    expect(Object.isFrozen(r)).toBe(true);
    for (const v of reachable(r)) if (isCapability(v)) expect(v).toBe(r.capability);
    expect(r.capability.parentId).toBe(root.id);
  });
});

/*
 * Prototype pollution: every key the kernel reads. Decisions are collected
 * while Object.prototype is polluted and compared after it is cleaned up, so
 * the test framework never runs with a polluted prototype.
 */
const POLLUTION: Readonly<Record<string, unknown>> = {
  fs: [{ path: "/", ops: ["read", "write", "list", "delete"] }],
  tools: ["search", "read_file", "deploy"],
  http: [{ origin: "https://evil.example", methods: ["GET", "POST"] }],
  db: [{ model: "User", ops: ["read", "create", "update", "delete"] }],
  exec: [{ program: "/bin/sh" }],
  tenant: "acme",
  tenants: ["acme", "other"],
  subtree: true,
  allowPrivateNetwork: true,
  allowExtraArgs: true,
  pathPrefix: "/",
  fields: ["password"],
  scope: {},
  expiresAt: 1,
  maxUses: 1,
  budget: { calls: 0 },
  address: "8.8.8.8",
  env: ["SECRET"],
  cwd: "/",
  args: [{ any: true }],
  ops: ["read", "write", "list", "delete"],
  methods: ["GET", "POST", "DELETE"],
  key: "tenantId",
  clock: { now: () => 0 },
  requestId: "polluted",
  cost: 1_000_000,
};

const PROBES: readonly Request[] = [
  { action: "tool.call", tool: "search" },
  { action: "tool.call", tool: "deploy" },
  { action: "tool.call", tool: "search", tenant: "other" },
  { action: "fs.read", path: "/data/report.csv" },
  { action: "fs.write", path: "/data/report.csv" },
  { action: "fs.read", path: "/etc/passwd" },
  { action: "http.request", method: "GET", url: "https://api.example.com/v1" },
  { action: "http.request", method: "GET", url: "https://api.example.com/v1", address: "10.0.0.1" },
  { action: "http.request", method: "POST", url: "https://evil.example/" },
  { action: "db.read", model: "User", fields: ["id", "password"], scope: { tenantId: 42 } },
  { action: "db.read", model: "User", fields: ["id"], scope: {} },
  { action: "db.delete", model: "User", fields: [], scope: { tenantId: 42 } },
  { action: "exec", argv: ["/usr/bin/git", "status"], cwd: "/work" },
  { action: "exec", argv: ["/usr/bin/git", "status", "--extra"], cwd: "/work" },
  { action: "exec", argv: ["/bin/sh", "-c", "id"], cwd: "/" },
];

function decide(cap: Capability, request: Request): string {
  try {
    const d = check(cap, request);
    return d.allowed ? "allowed" : `denied:${d.code}:${String(d.link)}:${d.rule}`;
  } catch (e) {
    return `threw:${(e as Error).name}`;
  }
}

describe("prototype pollution", () => {
  const polluted = Object.prototype as unknown as Record<string, unknown>;
  const cleanUp = () => {
    for (const key of Object.keys(POLLUTION)) Reflect.deleteProperty(polluted, key);
  };
  afterEach(cleanUp);

  function withPollution<T>(run: () => T): T {
    try {
      for (const [key, value] of Object.entries(POLLUTION)) polluted[key] = value;
      return run();
    } finally {
      cleanUp();
    }
  }

  /** A set of capabilities of every kind, made by `mint` (fresh, so nothing is charged between runs). */
  function family(clockStart: number) {
    const mint = createMint({ issuer: "pollution-test", clock: createManualClock(clockStart), policy: () => ROOT_GRANT });
    const root = mint.issue({ id: "alice" });
    const toolsOnly = createMint({ issuer: "tools-only", clock: createManualClock(clockStart), policy: () => ({ tools: ["search"] }) }).issue({ id: "bob" });
    return {
      root,
      toolsOnly,
      narrowed: narrow(root, { fs: [{ path: "/data", ops: ["read"], subtree: false }], tools: ["search"] }),
      restricted: restrict(root, { tenants: ["acme"] }),
      forwarder: revocable(root).capability,
      readOnly: readOnly(root),
      onlyTool: onlyTool(root, "search"),
      row: narrowToRow(root, { model: "User", id: 7 }),
      timed: forSeconds(root, 60),
      once: singleUse(root),
    };
  }

  function decisions(caps: Record<string, Capability>): string[] {
    return Object.entries(caps).flatMap(([name, cap]) => PROBES.map((p, i) => `${name}#${String(i)}:${decide(cap, p)}`));
  }

  it("does not change any decision of capabilities made before it", () => {
    const caps = family(1_000);
    const before = decisions(caps);
    const during = withPollution(() => decisions(caps));
    expect(during).toEqual(before);
    expect(decisions(caps)).toEqual(before);
  });

  it("does not change what capabilities made while it is in place allow, nor their conditions", () => {
    const clean = family(1_000);
    const made = withPollution(() => family(1_000));
    expect(decisions(made)).toEqual(decisions(clean));
    for (const name of Object.keys(clean) as (keyof typeof clean)[]) {
      expect(made[name].conditions, name).toEqual(clean[name].conditions);
      expect(made[name].lineage.map((l) => [l.grant, l.conditions]), name).toEqual(clean[name].lineage.map((l) => [l.grant, l.conditions]));
      expect(expiresAt(made[name]), name).toBe(expiresAt(clean[name]));
    }
    expect(made.root.mint.requestId).not.toBe("polluted");
  });

  it("lets no grant gain a domain it does not mention, whenever the capability was made", () => {
    const outside = [
      { action: "fs.read", path: "/etc/passwd" },
      { action: "http.request", method: "GET", url: "https://evil.example/" },
      { action: "db.read", model: "User", fields: ["id"], scope: {} },
      { action: "exec", argv: ["/bin/sh"], cwd: "/" },
      { action: "tool.call", tool: "deploy" },
    ] as const satisfies readonly Request[];
    const before = createMint({ issuer: "x", policy: () => ({ tools: ["search"] }) }).issue({ id: "bob" });
    const results = withPollution(() => {
      const during = createMint({ issuer: "x", policy: () => ({ tools: ["search"] }) }).issue({ id: "bob" });
      const narrowed = narrow(before, { tools: ["search"] });
      return [before, during, narrowed].flatMap((cap) => outside.map((r) => decide(cap, r)));
    });
    expect(results.every((r) => r.startsWith("denied:ERR_CAPABILITY_DENIED"))).toBe(true);
  });

  it("does not charge a polluted cost, nor take a polluted tenant or address for the request's own", () => {
    const cap = createMint({ issuer: "x", policy: () => ({ tools: ["search"], budget: { cost: 5 } }) }).issue({ id: "bob" });
    const confined = restrict(cap, { tenants: ["acme"] });
    const results = withPollution(() => [
      authorize(cap, { action: "tool.call", tool: "search" }, {}).allowed,
      check(confined, { action: "tool.call", tool: "search" }).allowed,
    ]);
    expect(results).toEqual([true, false]);
    expect(authorize(cap, { action: "tool.call", tool: "search" }, { cost: 5 }).allowed).toBe(true);
  });
});
