import fc from "fast-check";
import type { FieldView } from "../../src/kernel/field-actions.ts";
import type { Scalar } from "../../src/kernel/grant.ts";
import { describe, expect, it } from "vitest";
import {
  assertAuthorized,
  authorize,
  BudgetExhausted,
  check,
  createManualClock,
  createMint,
  DB_OPS,
  expiresAt,
  forSeconds,
  FS_OPS,
  HTTP_METHODS,
  narrow,
  restrict,
  revocable,
  revocationSignal,
  Revoked,
  singleUse,
  type ArgPattern,
  type Capability,
  type DbRule,
  type ExecRule,
  type FsRule,
  type Grant,
  type HttpRule,
  type LinkConditions,
  type ManualClock,
  type Request,
} from "../../src/index.ts";

/*
 * Invariants 2–5 as fast-check properties. Grants and requests are drawn from
 * a small universe of paths, origins, models, programs and tools, so that
 * generated requests often match generated grants and both outcomes are
 * exercised.
 */

const T0 = 1_700_000_000_000;
const RUNS = { numRuns: 300 };

// ---------------------------------------------------------------- universe

const PATHS = ["/", "/data", "/data/a", "/data/a/x.txt", "/data/b", "/database", "/etc", "/etc/passwd"] as const;
const ORIGINS = ["https://api.example.com", "https://api.example.com:8443", "http://api.example.com", "https://other.org", "http://127.0.0.1:8080", "http://[::1]"] as const;
const PREFIXES = ["/", "/v1", "/v1/", "/v2"] as const;
const URL_PATHS = ["/", "/v1", "/v1/x", "/v10", "/v2/y", "/v1/../v2/y", "/v1/%2e%2e/v2"] as const;
const ADDRESSES = ["127.0.0.1", "8.8.8.8", "10.0.0.1", "::1", "169.254.169.254"] as const;
const MODELS = ["User", "Order"] as const;
const FIELDS = ["id", "name", "email"] as const;
const SCOPE_KEYS = ["id", "tenantId"] as const;
const SCOPE_VALUES = [1, 2, "a"] as const;
const PROGRAMS = ["/bin/ls", "/usr/bin/git"] as const;
const ARGS = ["status", "log", "-la", "--x"] as const;
const CWDS = ["/", "/work", "/work/sub", "/tmp"] as const;
const ENV = ["HOME", "PATH"] as const;
const TOOLS = ["a", "b", "c"] as const;
const TENANTS = ["t1", "t2"] as const;

const opt = { requiredKeys: [] as [] };
const scopeArb = fc.dictionary(fc.constantFrom(...SCOPE_KEYS), fc.constantFrom(...SCOPE_VALUES), { maxKeys: 2 });
const MASKS = [{ mask: "***{last4}" }, { mask: "{first1}***" }] as const;
const fieldActionsArb = fc.dictionary(fc.constantFrom(...FIELDS), fc.constantFrom("allow" as const, "hash" as const, "redact" as const, "deny" as const, ...MASKS), { maxKeys: 3 });
const ROW_RULES = [{ field: "name", op: "ne", value: "x" }, { any: [{ field: "id", op: "lt", value: 3 }, { not: { field: "email", op: "eq", value: null } }] }] as const;
const viewsArb = fc.dictionary(fc.constantFrom(...FIELDS), fc.constantFrom("hash" as const, "redact" as const, ...MASKS), { maxKeys: 3 });

const fsRuleArb: fc.Arbitrary<FsRule> = fc.record(
  { path: fc.constantFrom(...PATHS), ops: fc.subarray([...FS_OPS], { minLength: 1 }), subtree: fc.boolean() },
  { requiredKeys: ["path", "ops"] },
);
const httpRuleArb: fc.Arbitrary<HttpRule> = fc.record(
  {
    origin: fc.constantFrom(...ORIGINS),
    methods: fc.subarray(["GET", "POST", "DELETE"] as const, { minLength: 1 }),
    pathPrefix: fc.constantFrom(...PREFIXES),
    allowPrivateNetwork: fc.boolean(),
  },
  { requiredKeys: ["origin", "methods"] },
);
const dbRuleArb: fc.Arbitrary<DbRule> = fc.record(
  {
    model: fc.constantFrom(...MODELS),
    ops: fc.subarray([...DB_OPS], { minLength: 1 }),
    fields: fc.subarray([...FIELDS]),
    scope: scopeArb,
    fieldActions: fieldActionsArb,
    rows: fc.constantFrom(...ROW_RULES),
    maxRows: fc.constantFrom(1, 10),
  },
  { requiredKeys: ["model", "ops"] },
);
const argPatternArb: fc.Arbitrary<ArgPattern> = fc.oneof(
  fc.constantFrom(...ARGS),
  fc.constantFrom({ prefix: "-" }, { prefix: "--" }, { prefix: "" }),
  fc.constant({ any: true } as const),
);
const execRuleArb: fc.Arbitrary<ExecRule> = fc.record(
  {
    program: fc.constantFrom(...PROGRAMS),
    args: fc.array(argPatternArb, { maxLength: 3 }),
    allowExtraArgs: fc.boolean(),
    cwd: fc.constantFrom(...CWDS),
    env: fc.subarray([...ENV]),
  },
  { requiredKeys: ["program"] },
);

const domainsArb = fc.record(
  {
    tools: fc.subarray([...TOOLS]),
    fs: fc.array(fsRuleArb, { maxLength: 3 }),
    http: fc.array(httpRuleArb, { maxLength: 3 }),
    db: fc.array(dbRuleArb, { maxLength: 3 }),
    exec: fc.array(execRuleArb, { maxLength: 2 }),
    audit: fc.constant(["read" as const]),
  },
  opt,
);

/** Conditions that do not run out under `check`: tenants and expiry around T0. */
const steadyConditionsArb: fc.Arbitrary<LinkConditions> = fc.record(
  { tenants: fc.subarray([...TENANTS], { minLength: 1 }), expiresAt: fc.constantFrom(T0 - 1, T0, T0 + 1, T0 + 60_000) },
  opt,
);

const grantArb: fc.Arbitrary<Grant> = fc
  .tuple(domainsArb, fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: steadyConditionsArb, weight: 1 }))
  .map(([domains, conditions]) => ({ ...domains, ...conditions }));

const tenantArb = fc.option(fc.constantFrom(...TENANTS), { nil: undefined });
const withTenant = <T extends object>(r: T, tenant: string | undefined): T => (tenant === undefined ? r : { ...r, tenant });

const requestArb: fc.Arbitrary<Request> = fc.oneof(
  fc.record({ tool: fc.constantFrom(...TOOLS, "d"), tenant: tenantArb }).map(({ tool, tenant }): Request => withTenant({ action: "tool.call", tool }, tenant)),
  fc
    .record({ op: fc.constantFrom(...FS_OPS), path: fc.constantFrom(...PATHS, "/data/a/y", "/data/ab", "/databases/x"), tenant: tenantArb })
    .map(({ op, path, tenant }): Request => withTenant({ action: `fs.${op}`, path }, tenant)),
  fc
    .record({
      method: fc.constantFrom(...HTTP_METHODS),
      origin: fc.constantFrom(...ORIGINS, "https://API.example.com:443", "https://evil.example"),
      path: fc.constantFrom(...URL_PATHS),
      address: fc.option(fc.constantFrom(...ADDRESSES), { nil: undefined }),
      tenant: tenantArb,
    })
    .map(({ method, origin, path, address, tenant }): Request =>
      withTenant(
        { action: "http.request", method, url: `${origin}${path}`, ...(address === undefined ? {} : { address }) },
        tenant,
      ),
    ),
  fc
    .record({ op: fc.constantFrom(...DB_OPS), model: fc.constantFrom(...MODELS), fields: fc.subarray([...FIELDS]), scope: scopeArb, views: fc.option(viewsArb, { nil: undefined }), rows: fc.subarray([...ROW_RULES]), limit: fc.option(fc.constantFrom(1, 10, 11), { nil: undefined }), tenant: tenantArb })
    .map(({ op, model, fields, scope, views, rows, limit, tenant }): Request =>
      withTenant({ action: `db.${op}`, model, fields, scope, rows, ...(views === undefined ? {} : { views }), ...(limit === undefined ? {} : { limit }) }, tenant),
    ),
  fc
    .record({
      program: fc.constantFrom(...PROGRAMS),
      args: fc.array(fc.constantFrom(...ARGS, "-x", "plain"), { maxLength: 4 }),
      cwd: fc.constantFrom(...CWDS, "/workshop"),
      env: fc.option(fc.subarray([...ENV]), { nil: undefined }),
      tenant: tenantArb,
    })
    .map(({ program, args, cwd, env, tenant }): Request =>
      withTenant({ action: "exec", argv: [program, ...args], cwd, ...(env === undefined ? {} : { env }) }, tenant),
    ),
  tenantArb.map((tenant): Request => withTenant({ action: "audit.read" }, tenant)),
);

/** Requests aimed at what `g` grants (most of them allowed by it), mixed with arbitrary ones. */
function requestsFor(g: Grant): fc.Arbitrary<Request[]> {
  const tenant = g.tenants?.[0];
  const aimed: fc.Arbitrary<Request>[] = [];
  const tools = g.tools ?? [];
  if (tools.length > 0) aimed.push(fc.constantFrom(...tools).map((tool): Request => ({ action: "tool.call", tool })));
  for (const r of g.fs ?? []) {
    aimed.push(
      fc.tuple(fc.constantFrom(...r.ops), fc.constantFrom(r.path, r.path === "/" ? "/x" : `${r.path}/x`)).map(([op, path]): Request => ({ action: `fs.${op}`, path })),
    );
  }
  for (const r of g.http ?? []) {
    const prefix = r.pathPrefix ?? "/";
    aimed.push(
      fc.constantFrom(...r.methods).map((method): Request => ({ action: "http.request", method, url: `${r.origin}${prefix}`, address: "8.8.8.8" })),
    );
  }
  for (const r of g.db ?? []) {
    aimed.push(
      fc.constantFrom(...r.ops).map((op): Request => {
        // The fields the rule shows whole are asked for whole, the others as the rule shows them.
        const actions = r.fieldActions ?? {};
        const reached = (r.fields ?? ["id"]).filter((f) => actions[f] !== "deny");
        const views: Record<string, FieldView> = {};
        for (const f of reached) {
          const a = actions[f];
          if (a !== undefined && a !== "allow" && a !== "deny") views[f] = a;
        }
        return { action: `db.${op}`, model: r.model, fields: reached.filter((f) => !Object.hasOwn(views, f)), scope: { ...(r.scope as Record<string, Scalar>) }, views, rows: r.rows === undefined ? [] : [r.rows], ...(r.maxRows === undefined ? {} : { limit: r.maxRows }) };
      }),
    );
  }
  for (const r of g.exec ?? []) {
    const args = (r.args ?? []).map((p) => (typeof p === "string" ? p : "prefix" in p ? `${p.prefix}v` : "anything"));
    aimed.push(fc.constant<Request>({ action: "exec", argv: [r.program, ...args], cwd: r.cwd ?? "/", env: [...(r.env ?? [])] }));
  }
  if (g.audit !== undefined) aimed.push(fc.constant<Request>({ action: "audit.read" }));
  const one = aimed.length === 0 ? requestArb : fc.oneof({ arbitrary: fc.oneof(...aimed), weight: 3 }, { arbitrary: requestArb, weight: 1 });
  return fc.array(one.map((r) => withTenant(r, tenant)), { minLength: 1, maxLength: 8 });
}

// ---------------------------------------------------------------- trees of capabilities

type Step =
  | { readonly parent: number; readonly kind: "narrow"; readonly grant: Grant }
  | { readonly parent: number; readonly kind: "restrict"; readonly conditions: LinkConditions }
  | { readonly parent: number; readonly kind: "revocable" };

interface TreeNode {
  readonly cap: Capability;
  readonly parent: number | null;
  readonly step: Step | null;
  readonly revoke: (() => void) | null;
  /** This link's own conditions, as the test wrote them. */
  readonly conditions: LinkConditions;
}

function stepArb(grant: fc.Arbitrary<Grant>, conditions: fc.Arbitrary<LinkConditions>): fc.Arbitrary<Step> {
  const parent = fc.nat({ max: 1000 });
  return fc.oneof(
    fc.record({ parent, kind: fc.constant("narrow" as const), grant }),
    fc.record({ parent, kind: fc.constant("restrict" as const), conditions }),
    fc.record({ parent, kind: fc.constant("revocable" as const) }),
  );
}

function conditionsOf(g: Grant | LinkConditions): LinkConditions {
  const { expiresAt: e, maxUses, budget, tenants } = g;
  return {
    ...(e === undefined ? {} : { expiresAt: e }),
    ...(maxUses === undefined ? {} : { maxUses }),
    ...(budget === undefined ? {} : { budget }),
    ...(tenants === undefined ? {} : { tenants }),
  };
}

function mintRoot(grant: Grant, clock: ManualClock): Capability {
  return createMint({ issuer: "properties", clock, policy: () => grant }).issue({ id: "alice" });
}

/** Builds a tree: node 0 is the root; each step hangs a new node under `parent` (modulo the nodes so far, or under the previous node when `chain`). */
function buildTree(rootGrant: Grant, steps: readonly Step[], clock: ManualClock, chain = false): TreeNode[] {
  const nodes: TreeNode[] = [{ cap: mintRoot(rootGrant, clock), parent: null, step: null, revoke: null, conditions: conditionsOf(rootGrant) }];
  for (const step of steps) {
    const parent = chain ? nodes.length - 1 : step.parent % nodes.length;
    const base = (nodes[parent] as TreeNode).cap;
    switch (step.kind) {
      case "narrow":
        nodes.push({ cap: narrow(base, step.grant), parent, step, revoke: null, conditions: conditionsOf(step.grant) });
        break;
      case "restrict":
        nodes.push({ cap: restrict(base, step.conditions), parent, step, revoke: null, conditions: conditionsOf(step.conditions) });
        break;
      case "revocable": {
        const r = revocable(base);
        nodes.push({ cap: r.capability, parent, step, revoke: r.revoke, conditions: {} });
        break;
      }
    }
  }
  return nodes;
}

/** Node indices from the root down to `i`. */
function chainOf(nodes: readonly TreeNode[], i: number): number[] {
  const out: number[] = [];
  for (let n: number | null = i; n !== null; n = (nodes[n] as TreeNode).parent) out.unshift(n);
  return out;
}

function isDescendantOrSelf(nodes: readonly TreeNode[], i: number, ancestor: number): boolean {
  return chainOf(nodes, i).includes(ancestor);
}

const node = (nodes: readonly TreeNode[], i: number): TreeNode => nodes[i] as TreeNode;

// ---------------------------------------------------------------- (a) attenuation

describe("(a) a narrowed capability never allows a request its parent denies", () => {
  it("along chains of random depth built from narrow, restrict and revocable", () => {
    let allowedSeen = 0;
    let deniedSeen = 0;
    fc.assert(
      fc.property(
        grantArb.chain((g) => fc.tuple(fc.constant(g), requestsFor(g))),
        // null: narrow again with the root's own grant, so that long chains still allow something.
        fc.array(fc.option(stepArb(grantArb, steadyConditionsArb), { nil: null, freq: 2 }), { minLength: 1, maxLength: 8 }),
        ([rootGrant, requests], maybeSteps) => {
          const clock = createManualClock(T0);
          const steps = maybeSteps.map((s): Step => s ?? { parent: 0, kind: "narrow", grant: rootGrant });
          const nodes = buildTree(rootGrant, steps, clock, true);
          const alone = nodes.map((n) => (n.step?.kind === "narrow" ? mintRoot(n.step.grant, clock) : null));
          const problems: string[] = [];
          for (const request of requests) {
            const allowed = nodes.map((n) => check(n.cap, request).allowed);
            for (let i = 1; i < nodes.length; i++) {
              if (allowed[i] === true && allowed[i - 1] !== true) problems.push(`link ${String(i)} allows what link ${String(i - 1)} denies: ${JSON.stringify(request)}`);
              // Local composition: a narrowed link allows exactly what its parent and its own grant both allow.
              const standalone = alone[i];
              const expected = standalone ? allowed[i - 1] === true && check(standalone, request).allowed : node(nodes, i).step?.kind === "revocable" ? allowed[i - 1] : allowed[i];
              if (allowed[i] !== expected) problems.push(`link ${String(i)} is not the meet of its parent and its own link: ${JSON.stringify(request)}`);
            }
            if (allowed.at(-1) === true) allowedSeen++;
            else deniedSeen++;
          }
          expect(problems).toEqual([]);
        },
      ),
      { numRuns: 250 },
    );
    // The universe is small enough that both outcomes actually happen at the end of chains.
    expect(allowedSeen).toBeGreaterThan(50);
    expect(deniedSeen).toBeGreaterThan(50);
  });

  it("for any single narrowing of a root, whatever the grants", () => {
    fc.assert(
      fc.property(grantArb.chain((g) => fc.tuple(fc.constant(g), requestsFor(g))), grantArb, ([parentGrant, requests], childGrant) => {
        const parent = mintRoot(parentGrant, createManualClock(T0));
        const child = narrow(parent, childGrant);
        for (const r of requests) {
          if (check(child, r).allowed) expect(check(parent, r).allowed).toBe(true);
          if (!check(parent, r).allowed) expect(check(child, r).allowed).toBe(false);
        }
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------- (b) revocation

describe("(b) revoking an ancestor denies every descendant and leaves the rest untouched", () => {
  it("in random trees", () => {
    fc.assert(
      fc.property(
        grantArb,
        fc.array(stepArb(grantArb, steadyConditionsArb), { minLength: 1, maxLength: 8 }),
        fc.nat({ max: 1000 }),
        fc.nat({ max: 1000 }),
        fc.array(requestArb, { minLength: 1, maxLength: 8 }),
        (rootGrant, steps, revokedParent, pick, requests) => {
          const clock = createManualClock(T0);
          // At least one revocable node somewhere in the tree.
          const nodes = buildTree(rootGrant, [...steps, { parent: revokedParent, kind: "revocable" }, ...steps], clock);
          const revocables = nodes.flatMap((n, i) => (n.revoke === null ? [] : [i]));
          const target = revocables[pick % revocables.length] as number;
          const before = nodes.map((n) => JSON.stringify(requests.map((r) => check(n.cap, r))));
          const signals = nodes.map((n) => revocationSignal(n.cap));
          node(nodes, target).revoke?.();
          const targetLink = chainOf(nodes, target).length - 1;
          const targetId = node(nodes, target).cap.id;
          const problems: string[] = [];
          nodes.forEach((n, i) => {
            const signal = signals[i] as { signal: AbortSignal; dispose: () => void };
            if (isDescendantOrSelf(nodes, i, target)) {
              for (const r of requests) {
                const d = check(n.cap, r);
                if (d.allowed || d.code !== "ERR_REVOKED" || d.link !== targetLink || d.linkId !== targetId) {
                  problems.push(`node ${String(i)} under the revoked node ${String(target)}: ${JSON.stringify(d)}`);
                }
              }
              try {
                assertAuthorized(n.cap, requests[0] as Request);
                problems.push(`node ${String(i)}: assertAuthorized did not throw`);
              } catch (e) {
                if (!(e instanceof Revoked)) problems.push(`node ${String(i)}: assertAuthorized threw ${String(e)}`);
              }
              if (!signal.signal.aborted || !(signal.signal.reason instanceof Revoked)) problems.push(`node ${String(i)}: signal not aborted with Revoked`);
            } else {
              if (JSON.stringify(requests.map((r) => check(n.cap, r))) !== before[i]) problems.push(`node ${String(i)} outside the revoked subtree changed its decisions`);
              if (signal.signal.aborted) problems.push(`node ${String(i)} outside the revoked subtree had its signal aborted`);
            }
            signal.dispose();
          });
          expect(problems).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------- (c) expiry

describe("(c) expiry: denied at and after expiresAt, allowed before, cascading to descendants", () => {
  const expiringConditions: fc.Arbitrary<LinkConditions> = fc.record({ expiresAt: fc.integer({ min: T0 + 1, max: T0 + 100 }) }, opt);
  const toolGrant: fc.Arbitrary<Grant> = fc
    .tuple(fc.subarray(["b", "c"] as const), expiringConditions)
    .map(([more, conditions]) => ({ tools: ["a", ...more], ...conditions }));
  type ExpiryStep = Step | { readonly parent: number; readonly kind: "forSeconds"; readonly ms: number };
  const expiryStepArb: fc.Arbitrary<ExpiryStep> = fc.oneof(
    stepArb(toolGrant, expiringConditions),
    fc.record({ parent: fc.nat({ max: 1000 }), kind: fc.constant("forSeconds" as const), ms: fc.integer({ min: 1, max: 100 }) }),
  );

  it("in random trees, against a manual clock", () => {
    fc.assert(
      fc.property(
        toolGrant,
        fc.array(expiryStepArb, { minLength: 1, maxLength: 10 }),
        fc.array(fc.integer({ min: T0 - 5, max: T0 + 110 }), { minLength: 1, maxLength: 10 }),
        (rootGrant, steps, times) => {
          const clock = createManualClock(T0);
          // forSeconds is restrict({ expiresAt: now + seconds }) on the mint's clock.
          const plain: Step[] = steps.map((s) => (s.kind === "forSeconds" ? { parent: s.parent, kind: "restrict", conditions: { expiresAt: T0 + s.ms } } : s));
          const nodes = buildTree(rootGrant, plain, clock);
          steps.forEach((s, k) => {
            if (s.kind !== "forSeconds") return;
            const i = k + 1;
            const viaHelper = forSeconds(node(nodes, node(nodes, i).parent ?? 0).cap, s.ms / 1000);
            expect(viaHelper.conditions.expiresAt).toBe(T0 + s.ms);
          });
          const expiries = nodes.map((_, i) => chainOf(nodes, i).map((j) => node(nodes, j).conditions.expiresAt));
          const problems: string[] = [];
          for (const t of [...times].sort((a, b) => a - b)) {
            clock.set(t);
            nodes.forEach((n, i) => {
              const chainExpiries = expiries[i] ?? [];
              const own = chainExpiries.filter((e): e is number => e !== undefined);
              const earliest = own.length === 0 ? null : Math.min(...own);
              if (expiresAt(n.cap) !== earliest) problems.push(`node ${String(i)}: expiresAt ${String(expiresAt(n.cap))}, expected ${String(earliest)}`);
              const d = check(n.cap, { action: "tool.call", tool: "a" });
              const at = `node ${String(i)} at T0+${String(t - T0)}`;
              if (earliest !== null && t >= earliest) {
                if (d.allowed) problems.push(`${at}: allowed at or after its expiry T0+${String(earliest - T0)}`);
                else {
                  const linkExpiry = chainExpiries[d.link];
                  if (d.code !== "ERR_EXPIRED" || d.rule !== "expiresAt" || linkExpiry === undefined || t < linkExpiry) problems.push(`${at}: ${JSON.stringify(d)}`);
                }
              } else if (!d.allowed || d.capabilityId !== n.cap.id) {
                problems.push(`${at}: denied before its expiry: ${JSON.stringify(d)}`);
              }
            });
          }
          expect(problems).toEqual([]);
        },
      ),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------- (d), (f) budgets

const budgetConditionsArb: fc.Arbitrary<LinkConditions> = fc.record(
  {
    maxUses: fc.integer({ min: 1, max: 6 }),
    budget: fc.record({ calls: fc.integer({ min: 0, max: 8 }), cost: fc.integer({ min: 0, max: 80 }).map((q) => q / 4) }, opt),
  },
  opt,
);
const budgetGrantArb: fc.Arbitrary<Grant> = budgetConditionsArb.map((c) => ({ tools: ["a"], ...c }));

interface Usage {
  calls: number;
  cost: number;
}

/** The reference model: the first link (root first) that has no room for one more call costing `cost`, or null. */
function modelDenial(nodes: readonly TreeNode[], usage: readonly Usage[], i: number, cost: number): { link: number; rule: string } | null {
  const chain = chainOf(nodes, i);
  for (let link = 0; link < chain.length; link++) {
    const j = chain[link] as number;
    const c = node(nodes, j).conditions;
    const u = usage[j] as Usage;
    if (c.maxUses !== undefined && u.calls >= c.maxUses) return { link, rule: "maxUses" };
    if (c.budget?.calls !== undefined && u.calls >= c.budget.calls) return { link, rule: "budget.calls" };
    if (c.budget?.cost !== undefined && u.cost + cost > c.budget.cost) return { link, rule: "budget.cost" };
  }
  return null;
}

const spendArb = fc.record({ node: fc.nat({ max: 1000 }), cost: fc.integer({ min: 0, max: 24 }).map((q) => q / 4), checkOnly: fc.boolean() });

describe("(d) budgets never overspend", () => {
  it("under random spend sequences across a random tree of descendants", () => {
    fc.assert(
      fc.property(
        budgetGrantArb,
        fc.array(stepArb(budgetGrantArb, budgetConditionsArb), { minLength: 1, maxLength: 10 }),
        fc.array(spendArb, { minLength: 1, maxLength: 60 }),
        (rootGrant, steps, spends) => {
          const nodes = buildTree(rootGrant, steps, createManualClock(T0));
          const usage: Usage[] = nodes.map(() => ({ calls: 0, cost: 0 }));
          /** What each link was actually charged, from the kernel's own allowed decisions. */
          const charged: Usage[] = nodes.map(() => ({ calls: 0, cost: 0 }));
          for (const spend of spends) {
            const i = spend.node % nodes.length;
            const expected = modelDenial(nodes, usage, i, spend.cost);
            const d = authorize(node(nodes, i).cap, { action: "tool.call", tool: "a" }, { cost: spend.cost });
            expect(d.allowed).toBe(expected === null);
            if (!d.allowed) {
              expect(d.code).toBe("ERR_BUDGET_EXHAUSTED");
              expect({ link: d.link, rule: d.rule }).toEqual(expected);
              continue;
            }
            for (const j of chainOf(nodes, i)) {
              (usage[j] as Usage).calls += 1;
              (usage[j] as Usage).cost += spend.cost;
              (charged[j] as Usage).calls += 1;
              (charged[j] as Usage).cost += spend.cost;
            }
          }
          nodes.forEach((n, j) => {
            const spent = charged[j] as Usage;
            const { maxUses, budget } = n.conditions;
            if (maxUses !== undefined) expect(spent.calls).toBeLessThanOrEqual(maxUses);
            if (budget?.calls !== undefined) expect(spent.calls).toBeLessThanOrEqual(budget.calls);
            if (budget?.cost !== undefined) expect(spent.cost).toBeLessThanOrEqual(budget.cost);
          });
        },
      ),
      RUNS,
    );
  });
});

describe("(f) check() never charges anything", () => {
  it("interleaving checks with uses changes no outcome, and checks predict uses", () => {
    fc.assert(
      fc.property(
        budgetGrantArb,
        fc.array(stepArb(budgetGrantArb, budgetConditionsArb), { minLength: 1, maxLength: 10 }),
        fc.array(spendArb, { minLength: 1, maxLength: 60 }),
        (rootGrant, steps, ops) => {
          const nodes = buildTree(rootGrant, steps, createManualClock(T0));
          const usage: Usage[] = nodes.map(() => ({ calls: 0, cost: 0 }));
          for (const op of ops) {
            const i = op.node % nodes.length;
            const cap = node(nodes, i).cap;
            if (op.checkOnly) {
              // check decides as a use costing nothing would, without using anything.
              for (let k = 0; k < 3; k++) expect(check(cap, { action: "tool.call", tool: "a" }).allowed).toBe(modelDenial(nodes, usage, i, 0) === null);
              continue;
            }
            const allowed = authorize(cap, { action: "tool.call", tool: "a" }, { cost: op.cost }).allowed;
            expect(allowed).toBe(modelDenial(nodes, usage, i, op.cost) === null);
            if (allowed) {
              for (const j of chainOf(nodes, i)) {
                (usage[j] as Usage).calls += 1;
                (usage[j] as Usage).cost += op.cost;
              }
            }
          }
        },
      ),
      RUNS,
    );
  });

  it("a thousand checks leave a single-use capability usable exactly once", () => {
    const cap = singleUse(mintRoot({ tools: ["a"], budget: { cost: 1 } }, createManualClock(T0)));
    for (let k = 0; k < 1000; k++) expect(check(cap, { action: "tool.call", tool: "a" }).allowed).toBe(true);
    expect(authorize(cap, { action: "tool.call", tool: "a" }, { cost: 1 }).allowed).toBe(true);
    expect(check(cap, { action: "tool.call", tool: "a" }).allowed).toBe(false);
  });
});

// ---------------------------------------------------------------- (e) single use under concurrency

/** Lets other tasks run for `ticks` turns of the event loop, mixing microtasks and macrotasks. */
async function yieldTurns(ticks: number): Promise<void> {
  for (let k = 0; k < ticks; k++) {
    if (k % 2 === 0) await Promise.resolve();
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

describe("(e) single use under 100 concurrent async uses", () => {
  it("exactly one of 100 concurrent uses succeeds; the rest get BudgetExhausted", async () => {
    const cap = singleUse(mintRoot({ tools: ["a"] }, createManualClock(T0)));
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, async (_, k) => {
        await yieldTurns(k % 3);
        assertAuthorized(cap, { action: "tool.call", tool: "a" });
      }),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(rejected).toHaveLength(99);
    for (const r of rejected) expect(r.reason).toBeInstanceOf(BudgetExhausted);
  });

  it("holds for uses spread over random descendants with random delays", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb(fc.constant({ tools: ["a"] }), fc.constant({})), { maxLength: 6 }),
        fc.array(fc.record({ node: fc.nat({ max: 1000 }), ticks: fc.nat({ max: 3 }) }), { minLength: 100, maxLength: 100 }),
        fc.integer({ min: 1, max: 3 }),
        async (steps, uses, maxUses) => {
          const clock = createManualClock(T0);
          const nodes = buildTree({ tools: ["a"] }, [{ parent: 0, kind: "restrict", conditions: { maxUses } }, ...steps.map((s) => ({ ...s, parent: s.parent + 1 }))], clock);
          // Node 1 is the limited link; use it and everything under it.
          const users = nodes.map((_, i) => i).filter((i) => isDescendantOrSelf(nodes, i, 1));
          const outcomes = await Promise.all(
            uses.map(async (u) => {
              await yieldTurns(u.ticks);
              return authorize(node(nodes, users[u.node % users.length] as number).cap, { action: "tool.call", tool: "a" }).allowed;
            }),
          );
          expect(outcomes.filter(Boolean)).toHaveLength(maxUses);
        },
      ),
      { numRuns: 40 },
    );
  });
});
