/** fast-check generators over a small universe, so grants and requests overlap often enough to exercise every rule. */
import fc from "fast-check";
import type { ApprovalRule, ArgPattern, Grant, LinkConditions } from "../../src/kernel/grant.ts";
import type { Request } from "../../src/kernel/request.ts";

export const NOW = 1_000_000;

const tools = ["a", "b", "c", "back\\slash\nnewline"];
const paths = ["/", "/srv", "/srv/a", "/srv/ab", "/srv/a/b", "/tmp"];
const origins = ["https://a.com", "http://a.com", "http://10.0.0.1", "http://[::1]"];
const prefixes = ["/", "/v1", "/v1/", "/v1/x"];
const ranges = ["10.0.0.0/8", "10.0.0.0/16", "10.0.0.1/32", "169.254.0.0/16", "127.0.0.0/8", "93.184.216.0/24", "0.0.0.0/0", "::1/128", "fd00::/8", "::/0"];
const addresses = ["10.0.0.1", "10.1.2.3", "93.184.216.34", "::1", "127.0.0.1", "169.254.169.254", "::ffff:169.254.169.254", "::ffff:10.0.0.1", "fd00::1", "0.0.0.0"];
const urlPaths = ["/", "/v1", "/v1/", "/v1x", "/v1/x", "/v1/x/y", "/v2"];
const models = ["C", "D"];
const fields = ["x", "y", "z"];
const programs = ["/bin/ls", "/bin/cat"];
const argValues = ["-l", "/srv", "/srv/a", "x"];
const envNames = ["HOME", "PATH"];
const tenants = ["t1", "t2"];
const scopeValues = [42, "42", true, null, 1.5];
const masks = [{ mask: "{last1}" }, { mask: "*{first1}" }];
const fieldAction = fc.constantFrom("allow" as const, "hash" as const, "redact" as const, "deny" as const, ...masks);
const rowRules = [
  { field: "x", op: "ne", value: "draft" },
  { any: [{ field: "x", op: "eq", value: 1 }, { field: "y", op: "in", value: ["a", "b"] }] },
  { not: { field: "z", op: "eq", value: null } },
] as const;
// The first rule with its keys in another order: the same rule.
const rowRulesAsWritten = [...rowRules, { value: "draft", op: "ne", field: "x" } as const];
const fieldView = fc.constantFrom("hash" as const, "redact" as const, ...masks);
const revocationTargets = ["principal", "session", "link"] as const;
const revocationIds = ["alice", "bob", "s-1", 'q"uote\\'];

const sub = <T>(xs: readonly T[], min = 0) => fc.subarray([...xs], { minLength: min });
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const strip = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

const argPattern: fc.Arbitrary<ArgPattern> = fc.oneof(
  fc.constantFrom(...argValues),
  fc.constantFrom(...argValues).map((p) => ({ prefix: p.slice(0, 3) })),
  fc.constant({ any: true } as const),
);

/** Approval rules over the same tools and actions; `input` patterns too, which a decision without arguments counts as matched. */
export const approvalRule: fc.Arbitrary<ApprovalRule> = fc
  .record({
    tools: opt(sub(tools, 1)),
    actions: opt(sub(["tool.call", "fs.write", "fs.read", "http.request", "db.update", "db.delete", "exec", "revoke"] as const, 1)),
    input: fc.oneof(
      { weight: 4, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.dictionary(fc.constantFrom("to", "amount"), argPattern, { minKeys: 1, maxKeys: 2 }) },
    ),
    approvers: sub(["alice", "bob", "role:admin"], 1),
    quorum: opt(fc.constantFrom(1)),
  })
  .map((r) => strip(r.tools === undefined && r.actions === undefined ? { ...r, tools: ["a"] } : r) as ApprovalRule);

export const conditions: fc.Arbitrary<LinkConditions> = fc
  .record({
    expiresAt: opt(fc.constantFrom(NOW - 1, NOW, NOW + 1, NOW + 1000)),
    tenants: opt(sub(tenants, 1)),
    maxUses: opt(fc.integer({ min: 1, max: 3 })),
  })
  .map((c) => strip(c) as LinkConditions);

export const grant: fc.Arbitrary<Grant> = fc
  .record({
    tools: opt(sub(tools)),
    fs: opt(fc.array(fc.record({ path: fc.constantFrom(...paths), ops: sub(["read", "write", "list", "delete"] as const, 1), subtree: opt(fc.boolean()) }).map(strip), { maxLength: 2 })),
    http: opt(
      fc.array(
        fc.record({
          origin: fc.constantFrom(...origins),
          methods: sub(["GET", "POST"] as const, 1),
          pathPrefix: opt(fc.constantFrom(...prefixes)),
          // A rule names address ranges or says whether private addresses are allowed, never both.
          reach: fc.oneof(
            fc.record({ allowPrivateNetwork: opt(fc.boolean()) }),
            fc.record({ addresses: sub(ranges, 1).map((a) => a.slice(0, 3)) }),
          ),
        }).map(({ reach, ...rule }) => strip({ ...rule, ...reach })),
        { maxLength: 2 },
      ),
    ),
    db: opt(
      fc.array(
        fc.record({
          model: fc.constantFrom(...models),
          ops: sub(["read", "update"] as const, 1),
          fields: opt(sub(fields)),
          scope: opt(fc.dictionary(fc.constantFrom("t", "id"), fc.constantFrom(...scopeValues), { maxKeys: 2 })),
          fieldActions: opt(fc.dictionary(fc.constantFrom(...fields), fieldAction, { maxKeys: 2 })),
          rows: opt(fc.constantFrom(...rowRules)),
          maxRows: opt(fc.constantFrom(1, 5)),
        }).map(strip),
        { maxLength: 2 },
      ),
    ),
    exec: opt(
      fc.array(
        fc.record({
          program: fc.constantFrom(...programs),
          args: opt(fc.array(argPattern, { maxLength: 2 })),
          allowExtraArgs: opt(fc.boolean()),
          cwd: opt(fc.constantFrom(...paths)),
          env: opt(sub(envNames)),
        }).map(strip),
        { maxLength: 2 },
      ),
    ),
    revoke: opt(fc.array(fc.record({ target: fc.constantFrom(...revocationTargets), ids: opt(sub(revocationIds, 1)) }).map(strip), { maxLength: 2 })),
    audit: opt(fc.constant(["read" as const])),
    approval: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.array(approvalRule, { maxLength: 2 }) }),
  })
  .chain((domains) => conditions.map((c) => strip({ ...domains, ...c }) as Grant));

/** One link appended after the root. */
export type Link = { readonly kind: "narrow"; readonly grant: Grant } | { readonly kind: "restrict"; readonly conditions: LinkConditions } | { readonly kind: "revocable" };

export const link: fc.Arbitrary<Link> = fc.oneof(
  { weight: 3, arbitrary: grant.map((g) => ({ kind: "narrow" as const, grant: g })) },
  { weight: 1, arbitrary: conditions.map((c) => ({ kind: "restrict" as const, conditions: c })) },
  { weight: 1, arbitrary: fc.constant({ kind: "revocable" as const }) },
);

const tenant = opt(fc.constantFrom(...tenants, "t3"));

export const request: fc.Arbitrary<Request> = fc.oneof(
  fc.record({ action: fc.constant("tool.call" as const), tool: fc.constantFrom(...tools, "zz"), tenant }).map(strip),
  fc.record({ action: fc.constantFrom("fs.read", "fs.write", "fs.list", "fs.delete"), path: fc.constantFrom(...paths, "/srv/a/b/c", "/srva"), tenant }).map(strip),
  fc.record({
    action: fc.constant("http.request" as const),
    method: fc.constantFrom("GET", "POST", "PUT"),
    url: fc.tuple(fc.constantFrom(...origins, "https://b.com", "https://a.com:443"), fc.constantFrom(...urlPaths)).map(([o, p]) => `${o}${p}`),
    address: opt(fc.constantFrom(...addresses)),
    tenant,
  }).map(strip),
  fc.record({
    action: fc.constantFrom("db.read", "db.update", "db.delete"),
    model: fc.constantFrom(...models),
    fields: sub(fields),
    scope: fc.dictionary(fc.constantFrom("t", "id"), fc.constantFrom(...scopeValues), { maxKeys: 2 }),
    views: opt(fc.dictionary(fc.constantFrom(...fields), fieldView, { maxKeys: 2 })),
    rows: opt(sub(rowRulesAsWritten)),
    limit: opt(fc.constantFrom(1, 5, 6)),
    tenant,
  }).map(strip),
  fc.record({
    action: fc.constant("exec" as const),
    argv: fc.tuple(fc.constantFrom(...programs), fc.array(fc.constantFrom(...argValues), { maxLength: 3 })).map(([p, a]) => [p, ...a]),
    cwd: fc.constantFrom(...paths),
    env: opt(sub(envNames)),
    tenant,
  }).map(strip),
  fc.record({ action: fc.constant("revoke" as const), target: fc.constantFrom(...revocationTargets, "key"), id: fc.constantFrom(...revocationIds, "carol"), tenant }).map(strip),
  fc.record({ action: fc.constant("audit.read" as const), tenant }).map(strip),
) as fc.Arbitrary<Request>;

const httpRule = fc
  .record({
    origin: fc.constantFrom(...origins),
    methods: sub(["GET", "POST"] as const, 1),
    pathPrefix: opt(fc.constantFrom(...prefixes)),
    reach: fc.oneof(fc.record({ allowPrivateNetwork: opt(fc.boolean()) }), fc.record({ addresses: sub(ranges, 1).map((a) => a.slice(0, 3)) })),
  })
  .map(({ reach, ...rule }) => strip({ ...rule, ...reach }));

/** Grants of HTTP rules alone, half of them naming address ranges: the address checks see many more cases than in `grant`. */
export const httpGrant: fc.Arbitrary<Grant> = fc.array(httpRule, { minLength: 1, maxLength: 3 }).map((http) => ({ http }) as Grant);

/** HTTP requests to the origins `httpGrant` names, usually with an address (which one connection would go to). */
export const httpRequest: fc.Arbitrary<Request> = fc
  .record({
    action: fc.constant("http.request" as const),
    method: fc.constantFrom("GET", "POST"),
    url: fc.tuple(fc.constantFrom(...origins), fc.constantFrom("/", "/v1/x")).map(([o, p]) => `${o}${p}`),
    address: fc.option(fc.constantFrom(...addresses), { nil: undefined, freq: 6 }),
  })
  .map(strip) as fc.Arbitrary<Request>;

/**
 * How a holder might craft a block that Biscuit's printing shows as a real
 * narrowing block while Biscuit evaluates something else: the link data in a
 * string fact whose text runs on into fake checks (the printing of
 * `agentcap_block("<json>\");\ncheck if tool(\"a")`), the real checks merged
 * into one string literal, the checks dropped, or the data of a wider link
 * over the checks of a narrower one.
 */
export type Crafting = "data-in-string" | "checks-in-one-string" | "no-checks" | "wider-data";

export const crafting: fc.Arbitrary<Crafting> = fc.constantFrom("data-in-string", "checks-in-one-string", "no-checks", "wider-data");
