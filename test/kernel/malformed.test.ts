import { describe, expect, it } from "vitest";
import {
  AgentcapError,
  authorize,
  check,
  createManualClock,
  createMint,
  forSeconds,
  InvalidInput,
  narrow,
  narrowToRow,
  NotACapability,
  onlyTool,
  parseGrant,
  restrict,
  revocable,
  type Capability,
  type FullReach,
  type Grant,
  type LinkConditions,
  type Principal,
  type Request,
  type UseOptions,
} from "../../src/index.ts";

/*
 * Invariant 8: bad input gets a typed error (InvalidInput, code
 * ERR_INVALID_INPUT) whose message names the bad field, and the capability
 * keeps serving afterwards. Values the type system would refuse are passed
 * through `bad()`, because they arrive at run time from JSON, models and
 * other processes.
 */

/** Launders a value past the type checker: the kernel must cope with whatever arrives at run time. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- deliberately unsound: the caller names the type to impersonate
const bad = <T>(value: unknown): T => value as T;

const ROOT_GRANT: Grant = {
  tools: ["search"],
  fs: [{ path: "/data", ops: ["read", "write"] }],
  http: [{ origin: "https://api.example.com", methods: ["GET"] }],
  db: [{ model: "User", ops: ["read"] }],
  exec: [{ program: "/usr/bin/git" }],
};

function root(): Capability<FullReach> {
  return createMint({ issuer: "malformed-test", clock: createManualClock(0), policy: () => ROOT_GRANT }).issue({ id: "alice" });
}

function cyclic(): Record<string, unknown> {
  const o: Record<string, unknown> = { path: "/data", ops: ["read"] };
  o.self = o;
  return o;
}

function nested(depth: number): unknown {
  let v: unknown = "leaf";
  for (let i = 0; i < depth; i++) v = { inner: v };
  return v;
}

interface Row {
  readonly name: string;
  readonly value: unknown;
  /** What the message must contain: the name (or path) of the bad field. */
  readonly field: RegExp;
}

function expectInvalid(run: () => unknown, field: RegExp): void {
  let thrown: unknown;
  try {
    run();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, "expected an InvalidInput to be thrown").toBeInstanceOf(InvalidInput);
  expect(thrown).toBeInstanceOf(AgentcapError);
  expect(thrown).not.toBeInstanceOf(NotACapability);
  const error = thrown as InvalidInput;
  expect(error.code).toBe("ERR_INVALID_INPUT");
  expect(error.name).toBe("InvalidInput");
  expect(error.message).toMatch(field);
}

const GRANTS: readonly Row[] = [
  { name: "not an object (null)", value: null, field: /grant/ },
  { name: "not an object (string)", value: "fs:/data", field: /grant/ },
  { name: "an array", value: [], field: /grant/ },
  { name: "unknown domain key", value: { files: [{ path: "/data", ops: ["read"] }] }, field: /files/ },
  { name: "misspelt domain key", value: { tool: ["search"] }, field: /"tool"/ },
  { name: "unknown key in an fs rule", value: { fs: [{ path: "/data", ops: ["read"], recursive: true }] }, field: /fs\.0.*recursive/ },
  { name: "relative path", value: { fs: [{ path: "data/reports", ops: ["read"] }] }, field: /fs\.0\.path.*not absolute/ },
  { name: "path with ..", value: { fs: [{ path: "/data/../etc", ops: ["read"] }] }, field: /fs\.0\.path.*'\.\.'/ },
  { name: "path with .", value: { fs: [{ path: "/data/./x", ops: ["read"] }] }, field: /fs\.0\.path.*'\.'/ },
  { name: "path with trailing slash", value: { fs: [{ path: "/data/", ops: ["read"] }] }, field: /fs\.0\.path.*separator/ },
  { name: "path with NUL", value: { fs: [{ path: "/data/a\0.txt", ops: ["read"] }] }, field: /fs\.0\.path.*NUL/ },
  { name: "path with //", value: { fs: [{ path: "/data//x", ops: ["read"] }] }, field: /fs\.0\.path.*empty segment/ },
  { name: "empty path", value: { fs: [{ path: "", ops: ["read"] }] }, field: /fs\.0\.path.*empty/ },
  { name: "path as a number", value: { fs: [{ path: 42, ops: ["read"] }] }, field: /fs\.0\.path/ },
  { name: "empty ops", value: { fs: [{ path: "/data", ops: [] }] }, field: /fs\.0\.ops/ },
  { name: "unknown fs op", value: { fs: [{ path: "/data", ops: ["read", "execute"] }] }, field: /fs\.0\.ops\.1/ },
  { name: "subtree as a string", value: { fs: [{ path: "/data", ops: ["read"], subtree: "yes" }] }, field: /fs\.0\.subtree/ },
  { name: "origin with upper-case host", value: { http: [{ origin: "https://A.com", methods: ["GET"] }] }, field: /http\.0\.origin.*https:\/\/a\.com/ },
  { name: "origin with its default port", value: { http: [{ origin: "https://a.com:443", methods: ["GET"] }] }, field: /http\.0\.origin.*canonical/ },
  { name: "origin with a path", value: { http: [{ origin: "https://a.com/v1", methods: ["GET"] }] }, field: /http\.0\.origin.*canonical/ },
  { name: "origin with a trailing slash", value: { http: [{ origin: "https://a.com/", methods: ["GET"] }] }, field: /http\.0\.origin/ },
  { name: "origin with userinfo", value: { http: [{ origin: "https://user@a.com", methods: ["GET"] }] }, field: /http\.0\.origin/ },
  { name: "origin with a non-http scheme", value: { http: [{ origin: "ftp://a.com", methods: ["GET"] }] }, field: /http\.0\.origin.*http/ },
  { name: "origin that is a file URL", value: { http: [{ origin: "file:///etc/passwd", methods: ["GET"] }] }, field: /http\.0\.origin/ },
  { name: "origin that is not a URL", value: { http: [{ origin: "api.example.com", methods: ["GET"] }] }, field: /http\.0\.origin/ },
  { name: "lower-case method", value: { http: [{ origin: "https://a.com", methods: ["get"] }] }, field: /http\.0\.methods\.0/ },
  { name: "unknown method", value: { http: [{ origin: "https://a.com", methods: ["CONNECT"] }] }, field: /http\.0\.methods\.0/ },
  { name: "empty methods", value: { http: [{ origin: "https://a.com", methods: [] }] }, field: /http\.0\.methods/ },
  { name: "relative pathPrefix", value: { http: [{ origin: "https://a.com", methods: ["GET"], pathPrefix: "v1" }] }, field: /http\.0\.pathPrefix/ },
  { name: "address range without a prefix length", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["10.0.0.5"] }] }, field: /http\.0\.addresses\.0.*10\.0\.0\.5\/32/ },
  { name: "address range with host bits set", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["10.0.0.1/8"] }] }, field: /http\.0\.addresses\.0.*beyond its \/8 prefix/ },
  { name: "address range with a prefix too long", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["10.0.0.0/33"] }] }, field: /http\.0\.addresses\.0.*longer than 32/ },
  { name: "address range with a zone id", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["fe80::%eth0/10"] }] }, field: /http\.0\.addresses\.0/ },
  { name: "address range of IPv4-mapped addresses", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["::ffff:0:0/96"] }] }, field: /http\.0\.addresses\.0.*IPv4 range instead/ },
  { name: "address range that is a host name", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["internal.example/8"] }] }, field: /http\.0\.addresses\.0/ },
  { name: "address range with a leading zero", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["010.0.0.0/8"] }] }, field: /http\.0\.addresses\.0/ },
  { name: "empty address ranges", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: [] }] }, field: /http\.0\.addresses/ },
  { name: "address ranges with allowPrivateNetwork", value: { http: [{ origin: "https://a.com", methods: ["GET"], addresses: ["10.0.0.0/8"], allowPrivateNetwork: true }] }, field: /http\.0\.allowPrivateNetwork.*addresses/ },
  { name: "allowPrivateNetwork as a string", value: { http: [{ origin: "https://a.com", methods: ["GET"], allowPrivateNetwork: "true" }] }, field: /http\.0\.allowPrivateNetwork/ },
  { name: "db model with SQL in it", value: { db: [{ model: "User; DROP TABLE User", ops: ["read"] }] }, field: /db\.0\.model.*identifier/ },
  { name: "db model starting with a digit", value: { db: [{ model: "1User", ops: ["read"] }] }, field: /db\.0\.model/ },
  { name: "db field that is not an identifier", value: { db: [{ model: "User", ops: ["read"], fields: ["name", "a.b"] }] }, field: /db\.0\.fields\.1/ },
  { name: "db scope key that is not an identifier", value: { db: [{ model: "User", ops: ["read"], scope: { "tenant-id": 1 } }] }, field: /db\.0\.scope/ },
  { name: "db scope value that is an object", value: { db: [{ model: "User", ops: ["read"], scope: { id: { gt: 1 } } }] }, field: /db\.0\.scope\.id/ },
  { name: "unknown db op", value: { db: [{ model: "User", ops: ["select"] }] }, field: /db\.0\.ops\.0/ },
  { name: "exec program relative", value: { exec: [{ program: "git" }] }, field: /exec\.0\.program.*not absolute/ },
  { name: "exec cwd with ..", value: { exec: [{ program: "/usr/bin/git", cwd: "/work/.." }] }, field: /exec\.0\.cwd/ },
  { name: "exec env that is not a variable name", value: { exec: [{ program: "/usr/bin/git", env: ["A-B"] }] }, field: /exec\.0\.env\.0/ },
  { name: "exec arg pattern of an unknown kind", value: { exec: [{ program: "/usr/bin/git", args: [{ regex: ".*" }] }] }, field: /exec\.0\.args\.0/ },
  { name: "exec arg pattern any: false", value: { exec: [{ program: "/usr/bin/git", args: [{ any: false }] }] }, field: /exec\.0\.args\.0/ },
  { name: "tools as a string", value: { tools: "search" }, field: /tools/ },
  { name: "empty tool name", value: { tools: [""] }, field: /tools\.0/ },
  { name: "tool name with NUL", value: { tools: ["a\0b"] }, field: /tools\.0/ },
  { name: "more than 1024 tools", value: { tools: Array.from({ length: 1025 }, (_, i) => `t${String(i)}`) }, field: /tools/ },
  { name: "expiresAt as a string", value: { tools: ["search"], expiresAt: "2030-01-01T00:00:00Z" }, field: /expiresAt/ },
  { name: "expiresAt as a Date", value: { tools: ["search"], expiresAt: new Date(0) }, field: /expiresAt/ },
  { name: "expiresAt NaN", value: { tools: ["search"], expiresAt: Number.NaN }, field: /expiresAt.*finite/ },
  { name: "expiresAt Infinity", value: { tools: ["search"], expiresAt: Number.POSITIVE_INFINITY }, field: /expiresAt.*finite/ },
  { name: "expiresAt negative", value: { tools: ["search"], expiresAt: -1 }, field: /expiresAt/ },
  { name: "expiresAt fractional", value: { tools: ["search"], expiresAt: 1.5 }, field: /expiresAt/ },
  { name: "expiresAt as a BigInt", value: { tools: ["search"], expiresAt: 10n }, field: /expiresAt.*bigint/ },
  { name: "maxUses zero", value: { tools: ["search"], maxUses: 0 }, field: /maxUses/ },
  { name: "maxUses negative", value: { tools: ["search"], maxUses: -1 }, field: /maxUses/ },
  { name: "maxUses fractional", value: { tools: ["search"], maxUses: 0.5 }, field: /maxUses/ },
  { name: "maxUses -Infinity", value: { tools: ["search"], maxUses: Number.NEGATIVE_INFINITY }, field: /maxUses.*finite/ },
  { name: "budget calls negative", value: { tools: ["search"], budget: { calls: -1 } }, field: /budget\.calls/ },
  { name: "budget cost NaN", value: { tools: ["search"], budget: { cost: Number.NaN } }, field: /budget\.cost/ },
  { name: "budget of an unknown unit", value: { tools: ["search"], budget: { dollars: 5 } }, field: /budget.*dollars/ },
  { name: "empty tenants", value: { tools: ["search"], tenants: [] }, field: /tenants/ },
  { name: "empty tenant name", value: { tools: ["search"], tenants: [""] }, field: /tenants\.0/ },
  { name: "cyclic object", value: { fs: [cyclic()] }, field: /grant\.fs\.0\.self.*refers to itself/ },
  { name: "function", value: { tools: [() => "search"] }, field: /grant\.tools\.0.*function/ },
  { name: "symbol", value: { tools: [Symbol("search")] }, field: /grant\.tools\.0.*symbol/ },
  { name: "deeply nested data", value: { db: [{ model: "User", ops: ["read"], scope: nested(40) }] }, field: /grant\.db\.0\.scope.*nested more than/ },
];

describe("malformed grants: InvalidInput naming the field, wherever a grant enters", () => {
  for (const row of GRANTS) {
    it(`${row.name} (narrow)`, () => {
      expectInvalid(() => narrow(root(), bad<Grant>(row.value)), row.field);
    });
    it(`${row.name} (parseGrant)`, () => {
      expectInvalid(() => parseGrant(row.value), row.field);
    });
    // A policy returns null to refuse (CapabilityDenied); every other bad value is malformed.
    if (row.value !== null) it(`${row.name} (returned by a mint policy)`, () => {
      const mint = createMint({ issuer: "m", policy: () => bad<Grant>(row.value) });
      expectInvalid(() => mint.issue({ id: "alice" }), row.field);
    });
  }

  it("names several bad fields at once", () => {
    expectInvalid(
      () => parseGrant({ fs: [{ path: "rel", ops: [] }], maxUses: 0 }),
      /fs\.0\.path.*fs\.0\.ops.*maxUses|maxUses.*fs\.0\.path/s,
    );
  });
});

const REQUESTS: readonly Row[] = [
  { name: "null", value: null, field: /request.*got null/ },
  { name: "a string", value: "fs.read /data/a", field: /request.*got string/ },
  { name: "an array", value: [{ action: "fs.read", path: "/data/a" }], field: /request/ },
  { name: "missing action", value: { path: "/data/a" }, field: /action/ },
  { name: "unknown action", value: { action: "fs.chmod", path: "/data/a" }, field: /action.*"fs\.chmod"/ },
  { name: "action with odd case", value: { action: "FS.READ", path: "/data/a" }, field: /action/ },
  { name: "action as a BigInt", value: { action: 10n }, field: /action.*bigint/ },
  { name: "action as a cyclic object", value: { action: cyclic() }, field: /action.*object/ },
  { name: "request with an extra field", value: { action: "fs.read", path: "/data/a", recursive: true }, field: /recursive.*not a field/ },
  { name: "fs request with a url field", value: { action: "fs.read", path: "/data/a", url: "https://a.com" }, field: /url.*not a field/ },
  { name: "missing path", value: { action: "fs.read" }, field: /path/ },
  { name: "relative path", value: { action: "fs.read", path: "data/a" }, field: /path.*not absolute/ },
  { name: "path with ..", value: { action: "fs.read", path: "/data/../etc/passwd" }, field: /path.*'\.\.'.*resolve/ },
  { name: "path with trailing slash", value: { action: "fs.list", path: "/data/" }, field: /path.*separator/ },
  { name: "path with NUL", value: { action: "fs.write", path: "/data/a\0.txt" }, field: /path.*NUL/ },
  { name: "URL with userinfo", value: { action: "http.request", method: "GET", url: "https://user:pw@api.example.com/v1" }, field: /URL.*userinfo/ },
  { name: "URL with a '..;' segment", value: { action: "http.request", method: "GET", url: "https://api.example.com/v1/..;/admin" }, field: /URL.*"\.\.;"/ },
  { name: "URL with a '..%3B' segment", value: { action: "http.request", method: "GET", url: "https://api.example.com/v1/..%3B/admin" }, field: /decode into a dot segment/ },
  { name: "URL with a '%u002e%u002e' segment", value: { action: "http.request", method: "GET", url: "https://api.example.com/v1/%u002e%u002e/admin" }, field: /decode into a dot segment/ },
  { name: "URL with a '.;' segment", value: { action: "http.request", method: "GET", url: "https://api.example.com/v1/.;x/admin" }, field: /URL.*path parameters/ },
  { name: "URL with an encoded slash", value: { action: "http.request", method: "GET", url: "https://api.example.com/v1%2Fadmin" }, field: /URL.*encoded '\/'/ },
  { name: "URL with an encoded backslash", value: { action: "http.request", method: "GET", url: "https://api.example.com/v1%5cadmin" }, field: /URL.*encoded/ },
  { name: "URL with an encoded NUL", value: { action: "http.request", method: "GET", url: "https://api.example.com/a%00b" }, field: /URL.*encoded/ },
  { name: "relative URL", value: { action: "http.request", method: "GET", url: "/v1/users" }, field: /URL.*not a valid absolute URL/ },
  { name: "URL with a non-http scheme", value: { action: "http.request", method: "GET", url: "file:///etc/passwd" }, field: /URL.*file:/ },
  { name: "javascript: URL", value: { action: "http.request", method: "GET", url: "javascript:alert(1)" }, field: /URL.*javascript:/ },
  { name: "lower-case method", value: { action: "http.request", method: "get", url: "https://api.example.com/" }, field: /method/ },
  { name: "TRACE method", value: { action: "http.request", method: "TRACE", url: "https://api.example.com/" }, field: /method/ },
  { name: "address that is not an IP", value: { action: "http.request", method: "GET", url: "https://api.example.com/", address: "localhost" }, field: /address/ },
  { name: "URL as a number", value: { action: "http.request", method: "GET", url: 42 }, field: /url/ },
  { name: "db model that is not an identifier", value: { action: "db.read", model: "users u", fields: [], scope: {} }, field: /model/ },
  { name: "db request without fields", value: { action: "db.read", model: "User", scope: {} }, field: /fields/ },
  { name: "db field with SQL", value: { action: "db.read", model: "User", fields: ["id", "name) --"], scope: {} }, field: /fields\.1/ },
  { name: "db request without scope", value: { action: "db.read", model: "User", fields: [] }, field: /scope/ },
  { name: "db scope value that is an array", value: { action: "db.update", model: "User", fields: [], scope: { id: [1, 2] } }, field: /scope\.id/ },
  { name: "exec with empty argv", value: { action: "exec", argv: [], cwd: "/work" }, field: /argv/ },
  { name: "exec argv with relative program", value: { action: "exec", argv: ["git", "status"], cwd: "/work" }, field: /argv\.0.*not absolute/ },
  { name: "exec argv program with ..", value: { action: "exec", argv: ["/usr/bin/../bin/sh"], cwd: "/work" }, field: /argv\.0.*'\.\.'/ },
  { name: "exec argument with NUL", value: { action: "exec", argv: ["/usr/bin/git", "a\0b"], cwd: "/work" }, field: /argv\.1/ },
  { name: "exec argv as a string", value: { action: "exec", argv: "/usr/bin/git status", cwd: "/work" }, field: /argv/ },
  { name: "exec without cwd", value: { action: "exec", argv: ["/usr/bin/git"] }, field: /cwd/ },
  { name: "exec relative cwd", value: { action: "exec", argv: ["/usr/bin/git"], cwd: "work" }, field: /cwd.*not absolute/ },
  { name: "exec env that is not a variable name", value: { action: "exec", argv: ["/usr/bin/git"], cwd: "/work", env: ["PATH=/tmp"] }, field: /env\.0/ },
  { name: "empty tool name", value: { action: "tool.call", tool: "" }, field: /tool/ },
  { name: "tool as a number", value: { action: "tool.call", tool: 1 }, field: /tool/ },
  { name: "empty tenant", value: { action: "tool.call", tool: "search", tenant: "" }, field: /tenant/ },
  { name: "tenant as an array", value: { action: "tool.call", tool: "search", tenant: ["acme"] }, field: /tenant/ },
  { name: "cyclic scope", value: { action: "db.read", model: "User", fields: [], scope: cyclic() }, field: /request\.scope\.self.*refers to itself/ },
  { name: "function in fields", value: { action: "db.read", model: "User", fields: [() => "id"], scope: {} }, field: /request\.fields\.0.*function/ },
  { name: "symbol as a tool", value: { action: "tool.call", tool: Symbol("search") }, field: /tool/ },
  { name: "deeply nested scope", value: { action: "db.read", model: "User", fields: [], scope: nested(40) }, field: /request\.scope.*nested more than/ },
  { name: "NaN in a scope", value: { action: "db.read", model: "User", fields: [], scope: { id: Number.NaN } }, field: /request\.scope\.id.*finite/ },
];

describe("malformed requests: InvalidInput naming the field, from check, authorize and the method forms", () => {
  for (const row of REQUESTS) {
    it(row.name, () => {
      const cap = root();
      const request = bad<Request>(row.value);
      expectInvalid(() => check(cap, request), row.field);
      expectInvalid(() => authorize(cap, request), row.field);
      expectInvalid(() => check(cap, request), row.field);
      expectInvalid(() => authorize(cap, request, { cost: 1 }), row.field);
    });
  }

  it("a malformed request charges nothing and the capability keeps serving", () => {
    const cap = restrict(root(), { maxUses: 1, budget: { cost: 1 } });
    for (const row of REQUESTS) expect(() => authorize(cap, bad<Request>(row.value), { cost: 1 })).toThrow(InvalidInput);
    expect(authorize(cap, { action: "tool.call", tool: "search" }, { cost: 1 }).allowed).toBe(true);
    expect(authorize(cap, { action: "tool.call", tool: "search" }).allowed).toBe(false);
  });
});

const PRINCIPALS: readonly Row[] = [
  { name: "null", value: null, field: /principal/ },
  { name: "missing id", value: { tenants: ["acme"] }, field: /id/ },
  { name: "empty id", value: { id: "" }, field: /id/ },
  { name: "id as a number", value: { id: 7 }, field: /id/ },
  { name: "extra field", value: { id: "alice", admin: true }, field: /admin/ },
  { name: "empty tenant", value: { id: "alice", tenants: [""] }, field: /tenants\.0/ },
  { name: "roles as a string", value: { id: "alice", roles: "admin" }, field: /roles/ },
  { name: "cyclic principal", value: (() => { const p: Record<string, unknown> = { id: "alice" }; p.me = p; return p; })(), field: /principal\.me/ },
  { name: "function as id", value: { id: () => "alice" }, field: /principal\.id.*function/ },
];

describe("malformed principals and mint options", () => {
  const mint = createMint({ issuer: "m", policy: () => ({ tools: ["search"] }) });
  for (const row of PRINCIPALS) {
    it(`principal: ${row.name}`, () => {
      expectInvalid(() => mint.issue(bad<Principal>(row.value)), row.field);
    });
    it(`principal from an authenticator: ${row.name}`, async () => {
      const authed = createMint<string>({ issuer: "m", policy: () => ({ tools: ["search"] }), authenticator: () => bad<Principal>(row.value) });
      const error: unknown = await authed.authenticate("header").catch((e: unknown) => e);
      expectInvalid(() => {
        throw error;
      }, row.field);
    });
  }

  it("empty requestId", () => {
    expectInvalid(() => mint.issue({ id: "alice" }, { requestId: "" }), /requestId/);
  });
  it("empty issuer", () => {
    expectInvalid(() => createMint({ issuer: "", policy: () => null }), /issuer/);
  });
  it("policy that is not a function", () => {
    expectInvalid(() => createMint({ issuer: "m", policy: bad<() => null>({ tools: ["search"] }) }), /policy/);
  });
  it("authenticate on a mint with no authenticator", async () => {
    const error: unknown = await mint.authenticate("header").catch((e: unknown) => e);
    expectInvalid(() => {
      throw error;
    }, /authenticator/);
  });
});

const CONDITIONS: readonly Row[] = [
  { name: "a domain in restrict", value: { tools: ["search"] }, field: /tools/ },
  { name: "expiresAt as a string", value: { expiresAt: "soon" }, field: /expiresAt/ },
  { name: "expiresAt NaN", value: { expiresAt: Number.NaN }, field: /expiresAt.*finite/ },
  { name: "maxUses zero", value: { maxUses: 0 }, field: /maxUses/ },
  { name: "budget cost negative", value: { budget: { cost: -1 } }, field: /budget\.cost/ },
  { name: "budget calls Infinity", value: { budget: { calls: Number.POSITIVE_INFINITY } }, field: /budget\.calls.*finite/ },
  { name: "tenants as a string", value: { tenants: "acme" }, field: /tenants/ },
  { name: "null", value: null, field: /conditions/ },
];

describe("malformed conditions", () => {
  for (const row of CONDITIONS) {
    it(row.name, () => {
      const cap = root();
      expectInvalid(() => restrict(cap, bad<LinkConditions>(row.value)), row.field);
      expectInvalid(() => restrict(cap, bad<LinkConditions>(row.value)), row.field);
    });
  }
});

const COSTS: readonly Row[] = [
  { name: "NaN", value: { cost: Number.NaN }, field: /cost.*NaN/ },
  { name: "Infinity", value: { cost: Number.POSITIVE_INFINITY }, field: /cost.*Infinity/ },
  { name: "negative", value: { cost: -1 }, field: /cost.*-1/ },
  { name: "a numeric string", value: { cost: "5" }, field: /cost/ },
  { name: "null", value: { cost: null }, field: /cost/ },
  { name: "a BigInt", value: { cost: 5n }, field: /cost/ },
  { name: "an object without a prototype", value: { cost: Object.create(null) as unknown }, field: /cost/ },
];

describe("malformed options and helper arguments", () => {
  for (const row of COSTS) {
    it(`cost: ${row.name}`, () => {
      const cap = restrict(root(), { budget: { cost: 10 } });
      const request: Request = { action: "tool.call", tool: "search" };
      expectInvalid(() => authorize(cap, request, bad<UseOptions>(row.value)), row.field);
      expectInvalid(() => authorize(cap, request, bad<UseOptions>(row.value)), row.field);
      // Nothing was charged by the refused calls.
      expect(authorize(cap, request, { cost: 10 }).allowed).toBe(true);
    });
  }

  for (const seconds of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
    it(`forSeconds(${String(seconds)})`, () => {
      expectInvalid(() => forSeconds(root(), seconds), /seconds/);
    });
  }

  it("narrowToRow with a model that is not an identifier", () => {
    expectInvalid(() => narrowToRow(root(), { model: "User u", id: 7 }), /db\.0\.model/);
  });
  it("narrowToRow with a key that is not an identifier", () => {
    expectInvalid(() => narrowToRow(root(), { model: "User", id: 7, key: "user-id" }), /db\.0\.scope/);
  });
  it("narrowToRow with an id that is an object", () => {
    expectInvalid(() => narrowToRow(root(), { model: "User", id: bad({ $ne: null }) }), /db\.0\.scope\.id/);
  });
  it("revocable labels that are not strings", () => {
    expectInvalid(() => revocable(root(), { labels: bad({ task: 5 }) }), /labels\.task/);
    expectInvalid(() => revocable(root(), { labels: bad({ step: "x".repeat(257) }) }), /labels\.step/);
    expectInvalid(() => revocable(root(), { labels: bad({ step: "" }) }), /labels\.step/);
    expectInvalid(() => revocable(root(), { labels: bad({ "": "x" }) }), /label names/);
    expectInvalid(() => revocable(root(), { labels: bad("session-1") }), /labels/);
    expectInvalid(() => revocable(root(), { labels: bad({ task: () => "t" }) }), /labels\.task.*function/);
  });
  it("onlyTool with an empty name", () => {
    expectInvalid(() => onlyTool(root(), ""), /tools\.0/);
  });
});
