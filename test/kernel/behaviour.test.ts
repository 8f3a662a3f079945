import { BlockList } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AgentcapError,
  assertAuthorized,
  authorize,
  BudgetExhausted,
  CapabilityDenied,
  check,
  clockTime,
  createManualClock,
  createMint,
  denialError,
  Expired,
  expiresAt,
  forSeconds,
  InvalidInput,
  InvalidToken,
  LimitExceeded,
  narrow,
  narrowToRow,
  NotACapability,
  onlyTool,
  readOnly,
  restrict,
  revocable,
  revocationSignal,
  Revoked,
  singleUse,
  systemClock,
  type Capability,
  type Decision,
  type Denied,
  type FullReach,
  type Grant,
  type ManualClock,
  type Request,
} from "../../src/index.ts";
import { addressBits, addressRangeBits, caretaker, classifyAddress, type AddressClass } from "../../src/kernel/internal.ts";
import { addressRangeProblem } from "../../src/kernel/address.ts";
import { monotonicClock } from "../../src/kernel/clock.ts";

const T0 = Date.UTC(2030, 0, 1);

function mintWith(grant: Grant, clock: ManualClock = createManualClock(T0)): Capability<FullReach> {
  return createMint({ issuer: "behaviour", clock, policy: () => grant }).issue({ id: "alice", tenants: ["acme"] }, { requestId: "req-1" });
}

const allows = (cap: Capability, r: Request): boolean => check(cap, r).allowed;

function denied(d: Decision): Denied {
  if (d.allowed) throw new Error("expected a denial, got allowed");
  return d;
}

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("fs matching", () => {
  const cap = mintWith({
    fs: [
      { path: "/data", ops: ["read", "list"] },
      { path: "/out/report.txt", ops: ["write"], subtree: false },
      { path: "/tmp", ops: ["delete"] },
    ],
  });

  it("a subtree rule covers the directory and everything below it", () => {
    expect(allows(cap, { action: "fs.read", path: "/data" })).toBe(true);
    expect(allows(cap, { action: "fs.read", path: "/data/a" })).toBe(true);
    expect(allows(cap, { action: "fs.list", path: "/data/a/b/c.txt" })).toBe(true);
  });

  it("matches whole path components: /data does not cover /database or /data2", () => {
    expect(allows(cap, { action: "fs.read", path: "/database" })).toBe(false);
    expect(allows(cap, { action: "fs.read", path: "/data2/x" })).toBe(false);
    expect(allows(cap, { action: "fs.read", path: "/dat" })).toBe(false);
    expect(allows(cap, { action: "fs.read", path: "/" })).toBe(false);
  });

  it("a single-file rule (subtree: false) covers that path only", () => {
    expect(allows(cap, { action: "fs.write", path: "/out/report.txt" })).toBe(true);
    expect(allows(cap, { action: "fs.write", path: "/out/report.txt/x" })).toBe(false);
    expect(allows(cap, { action: "fs.write", path: "/out" })).toBe(false);
    expect(allows(cap, { action: "fs.write", path: "/out/other.txt" })).toBe(false);
  });

  it("checks the operation per rule", () => {
    expect(allows(cap, { action: "fs.write", path: "/data/a" })).toBe(false);
    expect(allows(cap, { action: "fs.delete", path: "/data/a" })).toBe(false);
    expect(allows(cap, { action: "fs.delete", path: "/tmp/x" })).toBe(true);
    expect(allows(cap, { action: "fs.read", path: "/tmp/x" })).toBe(false);
  });

  it("a rule for / covers everything", () => {
    const all = mintWith({ fs: [{ path: "/", ops: ["read"] }] });
    expect(allows(all, { action: "fs.read", path: "/etc/passwd" })).toBe(true);
    expect(allows(all, { action: "fs.read", path: "/" })).toBe(true);
  });

  it("names the rule and the denied path", () => {
    const d = denied(check(cap, { action: "fs.write", path: "/data/a" }));
    expect(d.rule).toBe("fs");
    expect(d.reason).toContain("write");
    expect(d.reason).toContain("/data/a");
    expect(denied(check(mintWith({ tools: ["x"] }), { action: "fs.read", path: "/data" })).reason).toContain("grants no file access");
  });
});

describe("http matching", () => {
  const cap = mintWith({
    http: [
      { origin: "https://api.example.com", methods: ["GET", "HEAD"], pathPrefix: "/v1" },
      { origin: "https://upload.example.com", methods: ["POST"], pathPrefix: "/files/" },
      { origin: "https://internal.example.com", methods: ["GET"], allowPrivateNetwork: true },
      { origin: "http://127.0.0.1:8080", methods: ["GET"] },
      { origin: "http://[::1]:3000", methods: ["GET"] },
    ],
  });
  const get = (url: string, address?: string): Request => ({ action: "http.request", method: "GET", url, ...(address === undefined ? {} : { address }) });

  it("matches the exact origin: scheme, host and port", () => {
    expect(allows(cap, get("https://api.example.com/v1/users"))).toBe(true);
    expect(allows(cap, get("http://api.example.com/v1/users"))).toBe(false);
    expect(allows(cap, get("https://api.example.com:8443/v1/users"))).toBe(false);
    expect(allows(cap, get("https://evil.api.example.com/v1/users"))).toBe(false);
    expect(allows(cap, get("https://api.example.com.evil.com/v1/users"))).toBe(false);
  });

  it("compares the request in canonical form: host case and the default port do not matter", () => {
    expect(allows(cap, get("https://API.Example.COM:443/v1/users"))).toBe(true);
    expect(allows(cap, get("https://api.example.com/v1/users?next=/admin#frag"))).toBe(true);
  });

  it("checks the method", () => {
    expect(allows(cap, { action: "http.request", method: "HEAD", url: "https://api.example.com/v1" })).toBe(true);
    expect(allows(cap, { action: "http.request", method: "POST", url: "https://api.example.com/v1" })).toBe(false);
    expect(allows(cap, { action: "http.request", method: "POST", url: "https://upload.example.com/files/a" })).toBe(true);
  });

  it("matches pathPrefix on whole segments, and a prefix ending in / matches only below it", () => {
    expect(allows(cap, get("https://api.example.com/v1"))).toBe(true);
    expect(allows(cap, get("https://api.example.com/v1/"))).toBe(true);
    expect(allows(cap, get("https://api.example.com/v10"))).toBe(false);
    expect(allows(cap, get("https://api.example.com/"))).toBe(false);
    const post = (url: string): Request => ({ action: "http.request", method: "POST", url });
    expect(allows(cap, post("https://upload.example.com/files/a/b"))).toBe(true);
    expect(allows(cap, post("https://upload.example.com/files"))).toBe(false);
    expect(allows(cap, post("https://upload.example.com/filesx"))).toBe(false);
  });

  it("removes dot segments, plain or percent-encoded, before comparing prefixes", () => {
    expect(allows(cap, get("https://api.example.com/v1/../admin"))).toBe(false);
    expect(allows(cap, get("https://api.example.com/v1/%2e%2e/admin"))).toBe(false);
    expect(allows(cap, get("https://api.example.com/v1/%2E%2E/admin"))).toBe(false);
    expect(allows(cap, get("https://api.example.com/admin/../v1/x"))).toBe(true);
    expect(allows(cap, get("https://api.example.com/%76%31/x"))).toBe(true); // %76%31 is "v1"
  });

  it("denies a host name that resolves to a private, loopback or link-local address, unless allowed", () => {
    expect(allows(cap, get("https://api.example.com/v1", "93.184.216.34"))).toBe(true);
    for (const address of ["10.0.0.5", "127.0.0.1", "169.254.169.254", "192.168.1.1", "::1", "fd00::1", "::ffff:127.0.0.1"]) {
      const d = denied(check(cap, get("https://api.example.com/v1", address)));
      expect(d.rule, address).toBe("http.address");
      expect(d.reason).toContain(address);
      expect(d.reason).toContain("allowPrivateNetwork");
    }
    expect(allows(cap, get("https://internal.example.com/x", "10.0.0.5"))).toBe(true);
    expect(allows(cap, get("https://internal.example.com/x"))).toBe(true);
  });

  it("an IP-literal origin names its own address, and only that one", () => {
    expect(allows(cap, get("http://127.0.0.1:8080/health"))).toBe(true);
    expect(allows(cap, get("http://127.0.0.1:8080/health", "127.0.0.1"))).toBe(true);
    expect(denied(check(cap, get("http://127.0.0.1:8080/health", "10.0.0.1"))).rule).toBe("http.address");
    expect(allows(cap, get("http://[::1]:3000/"))).toBe(true);
    expect(allows(cap, get("http://127.0.0.1:8081/"))).toBe(false);
    expect(allows(cap, get("http://localhost:8080/"))).toBe(false);
  });

  describe("address ranges", () => {
    const ranged = mintWith({
      http: [
        { origin: "https://internal.example.com", methods: ["GET"], addresses: ["10.1.0.0/16", "fd00:1::/32"] },
        { origin: "http://10.1.2.3:8080", methods: ["GET"], addresses: ["10.1.0.0/16"] },
        { origin: "http://10.9.9.9:8080", methods: ["GET"], addresses: ["10.1.0.0/16"] },
      ],
    });
    const internal = (address?: string) => get("https://internal.example.com/x", address);

    it("allow exactly the addresses inside one of the ranges, public or not", () => {
      for (const address of ["10.1.0.0", "10.1.255.255", "10.1.2.3", "fd00:1::5", "FD00:1:FFFF::1", "::ffff:10.1.2.3", "::ffff:a01:203"]) {
        expect(allows(ranged, internal(address)), address).toBe(true);
      }
      for (const address of ["10.2.0.1", "10.0.255.255", "93.184.216.34", "169.254.169.254", "::ffff:169.254.169.254", "127.0.0.1", "::1", "fd00:2::1", "0.0.0.0", "::"]) {
        const d = denied(check(ranged, internal(address)));
        expect(d.rule, address).toBe("http.address");
        expect(d.reason).toContain("outside the address ranges");
      }
    });

    it("place an address in a range exactly as Node's BlockList does, for addresses that embed no IPv4 one (generated)", () => {
      const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join("."));
      // Leading groups kept away from the forms that embed IPv4 (::/96, ::ffff:0:0/96, 64:ff9b::/96, 2002::/16), which are matched as IPv4.
      const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map(([a = 0, ...rest]) => [(a % 0x1000) + 0x3000, ...rest].map((g) => g.toString(16)).join(":"));
      /** `base` with the bits past the prefix cleared: the range's first address, which is how a grant must name it. */
      const networkOf = (base: string, bits: number, family: "ipv4" | "ipv6"): string => {
        const [width, groups, radix] = family === "ipv4" ? [8n, base.split("."), 10] : [16n, base.split(":"), 16];
        const total = width * BigInt(groups.length);
        const value = groups.reduce((a, g) => (a << width) | BigInt(parseInt(g, radix)), 0n);
        const host = total - BigInt(bits);
        const network = (value >> host) << host;
        const mask = (1n << width) - 1n;
        return groups.map((_, i) => ((network >> (width * BigInt(groups.length - 1 - i))) & mask).toString(radix)).join(family === "ipv4" ? "." : ":");
      };
      fc.assert(
        fc.property(fc.oneof(fc.tuple(v4, v4, fc.nat(32)).map((t) => [...t, "ipv4"] as const), fc.tuple(v6, v6, fc.nat(128)).map((t) => [...t, "ipv6"] as const)), ([address, base, bits, family]) => {
          const list = new BlockList();
          list.addSubnet(base, bits, family);
          const network = networkOf(base, bits, family);
          expect(addressRangeProblem(`${network}/${bits}`)).toBeUndefined();
          const inside = (addressBits(address) ?? "").startsWith(addressRangeBits(`${network}/${bits}`));
          expect(inside, `${address} in ${network}/${bits}`).toBe(list.check(address, family));
        }),
      );
    });

    it("leave a name not yet resolved to the check made with its address", () => {
      expect(allows(ranged, internal())).toBe(true);
    });

    it("hold an IP-literal origin's own address to them", () => {
      expect(allows(ranged, get("http://10.1.2.3:8080/"))).toBe(true);
      expect(denied(check(ranged, get("http://10.9.9.9:8080/"))).rule).toBe("http.address");
    });

    it("narrow like every grant: a child's ranges only shrink what its parent allows", () => {
      const child = narrow(ranged, { http: [{ origin: "https://internal.example.com", methods: ["GET"], addresses: ["10.1.2.0/24", "10.2.0.0/16"] }] });
      expect(allows(child, internal("10.1.2.9"))).toBe(true);
      expect(allows(child, internal("10.1.3.9"))).toBe(false);
      expect(allows(child, internal("10.2.0.1"))).toBe(false);
      const anyPrivate = narrow(ranged, { http: [{ origin: "https://internal.example.com", methods: ["GET"], allowPrivateNetwork: true }] });
      expect(allows(anyPrivate, internal("10.1.0.1"))).toBe(true);
      expect(allows(anyPrivate, internal("192.168.0.1"))).toBe(false);
      const all = narrow(mintWith({ http: [{ origin: "https://internal.example.com", methods: ["GET"] }] }), {
        http: [{ origin: "https://internal.example.com", methods: ["GET"], addresses: ["0.0.0.0/0", "::/0"] }],
      });
      expect(allows(all, internal("93.184.216.34"))).toBe(true);
      expect(allows(all, internal("10.1.0.1"))).toBe(false);
    });
  });

  it("a URL that spells an IP literal differently is canonicalized first", () => {
    // WHATWG parsing turns 0x7f.1 into 127.0.0.1, so it matches the literal origin and nothing else.
    expect(allows(cap, get("http://0x7f.1:8080/health"))).toBe(true);
    const named = mintWith({ http: [{ origin: "https://api.example.com", methods: ["GET"] }] });
    expect(allows(named, get("http://0x7f.1:8080/health"))).toBe(false);
  });

  it("names the rule when nothing matches", () => {
    const d = denied(check(cap, get("https://evil.example/")));
    expect(d.rule).toBe("http");
    expect(d.reason).toContain("GET https://evil.example/");
    expect(denied(check(mintWith({ tools: ["x"] }), get("https://api.example.com/v1"))).reason).toContain("grants no HTTP access");
  });
});

describe("db matching", () => {
  const cap = mintWith({
    db: [
      { model: "User", ops: ["read"], fields: ["id", "name"], scope: { tenantId: 42 } },
      { model: "Order", ops: ["read", "update"] },
      { model: "Note", ops: ["read"], scope: { deletedAt: null, ownerId: "u1" } },
    ],
  });
  const read = (model: string, fields: string[], scope: Record<string, string | number | boolean | null>): Request => ({ action: "db.read", model, fields, scope });

  it("allows only the granted fields", () => {
    expect(allows(cap, read("User", ["id"], { tenantId: 42 }))).toBe(true);
    expect(allows(cap, read("User", ["id", "name"], { tenantId: 42 }))).toBe(true);
    expect(allows(cap, read("User", [], { tenantId: 42 }))).toBe(true);
    const d = denied(check(cap, read("User", ["id", "email"], { tenantId: 42 })));
    expect(d.rule).toBe("db");
    expect(d.reason).toContain("User.email");
  });

  it("a rule without fields allows every field", () => {
    expect(allows(cap, read("Order", ["id", "total", "secret"], {}))).toBe(true);
  });

  it("requires the request to be confined to the rule's scope, with the same value and type", () => {
    expect(allows(cap, read("User", ["id"], { tenantId: 42, id: 7 }))).toBe(true);
    expect(allows(cap, read("User", ["id"], { tenantId: 43 }))).toBe(false);
    expect(allows(cap, read("User", ["id"], { tenantId: "42" }))).toBe(false);
    const d = denied(check(cap, read("User", ["id"], {})));
    expect(d.reason).toContain("confines User to rows where tenantId = 42");
    expect(allows(cap, read("Note", ["id"], { deletedAt: null, ownerId: "u1" }))).toBe(true);
    expect(allows(cap, read("Note", ["id"], { ownerId: "u1" }))).toBe(false);
  });

  it("checks model and operation", () => {
    expect(allows(cap, { action: "db.update", model: "Order", fields: ["status"], scope: {} })).toBe(true);
    expect(allows(cap, { action: "db.delete", model: "Order", fields: [], scope: {} })).toBe(false);
    expect(allows(cap, { action: "db.update", model: "User", fields: ["name"], scope: { tenantId: 42 } })).toBe(false);
    expect(denied(check(cap, read("Invoice", ["id"], {}))).reason).toContain("does not grant read on model Invoice");
  });
});

describe("exec matching", () => {
  const cap = mintWith({
    exec: [
      { program: "/usr/bin/git", args: ["status", { prefix: "--porcelain" }], cwd: "/work", env: ["HOME"] },
      { program: "/usr/bin/git", args: ["log", { any: true }], allowExtraArgs: true, cwd: "/work" },
      { program: "/bin/ls" },
    ],
  });
  const run = (argv: string[], cwd = "/work", env?: string[]): Request => ({ action: "exec", argv, cwd, ...(env === undefined ? {} : { env }) });

  it("matches argument patterns exactly, by prefix and by any", () => {
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain"]))).toBe(true);
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain=v2"]))).toBe(true);
    expect(allows(cap, run(["/usr/bin/git", "status", "-s"]))).toBe(false);
    expect(allows(cap, run(["/usr/bin/git", "push", "--porcelain"]))).toBe(false);
    expect(allows(cap, run(["/usr/bin/git", "log", "--oneline"]))).toBe(true);
  });

  it("refuses missing or extra arguments unless allowExtraArgs", () => {
    expect(allows(cap, run(["/usr/bin/git", "status"]))).toBe(false);
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain", "--", "x"]))).toBe(false);
    expect(allows(cap, run(["/usr/bin/git", "log", "-n", "5", "--stat"]))).toBe(true);
    expect(allows(cap, run(["/usr/bin/git", "log"]))).toBe(false);
  });

  it("a rule without args allows any arguments", () => {
    expect(allows(cap, run(["/bin/ls"], "/"))).toBe(true);
    expect(allows(cap, run(["/bin/ls", "-la", "/etc"], "/tmp"))).toBe(true);
  });

  it("matches the program by its exact absolute path", () => {
    expect(allows(cap, run(["/usr/bin/gitx", "status", "--porcelain"]))).toBe(false);
    expect(allows(cap, run(["/usr/local/bin/git", "status", "--porcelain"]))).toBe(false);
    expect(allows(cap, run(["/bin/sh", "-c", "ls"]))).toBe(false);
  });

  it("confines cwd to the rule's subtree, on whole components", () => {
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain"], "/work/repo"))).toBe(true);
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain"], "/workshop"))).toBe(false);
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain"], "/"))).toBe(false);
  });

  it("passes only the environment variables the rule names", () => {
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain"], "/work", ["HOME"]))).toBe(true);
    expect(allows(cap, run(["/usr/bin/git", "status", "--porcelain"], "/work", ["HOME", "AWS_SECRET_ACCESS_KEY"]))).toBe(false);
    expect(allows(cap, run(["/usr/bin/git", "log", "x"], "/work", ["HOME"]))).toBe(false);
  });

  it("names the rule", () => {
    const d = denied(check(cap, run(["/bin/sh", "-c", "id"])));
    expect(d.rule).toBe("exec");
    expect(d.reason).toContain("/bin/sh");
    expect(denied(check(mintWith({ tools: ["x"] }), run(["/bin/ls"]))).reason).toContain("grants no commands");
  });
});

describe("audit matching", () => {
  it("an audit grant allows reading the log; a grant without one does not", () => {
    expect(allows(mintWith({ audit: ["read"] }), { action: "audit.read" })).toBe(true);
    const d = denied(check(mintWith({ tools: ["x"] }), { action: "audit.read" }));
    expect(d.rule).toBe("audit");
    expect(d.reason).toContain("grants no audit access");
  });

  it("with tenants, reads only those tenants' events: another tenant, or every tenant at once, is denied", () => {
    const cap = mintWith({ audit: ["read"], tenants: ["acme"] });
    expect(allows(cap, { action: "audit.read", tenant: "acme" })).toBe(true);
    expect(allows(cap, { action: "audit.read", tenant: "globex" })).toBe(false);
    expect(allows(cap, { action: "audit.read" })).toBe(false);
  });

  it("narrowing never adds audit access, and a narrowed tenant list confines it further", () => {
    const root = mintWith({ audit: ["read"], tools: ["x"] });
    expect(allows(narrow(root, { tools: ["x"] }), { action: "audit.read" })).toBe(false);
    expect(allows(narrow(mintWith({ tools: ["x"] }), { audit: ["read"] }), { action: "audit.read" })).toBe(false);
    const acme = narrow(root, { audit: ["read"], tenants: ["acme"] });
    expect(allows(acme, { action: "audit.read", tenant: "acme" })).toBe(true);
    expect(allows(acme, { action: "audit.read", tenant: "globex" })).toBe(false);
  });

  it("refuses an audit grant that names an operation it does not know, or none", () => {
    expect(thrown(() => mintWith({ audit: ["write"] } as unknown as Grant))).toBeInstanceOf(InvalidInput);
    expect(thrown(() => mintWith({ audit: [] }))).toBeInstanceOf(InvalidInput);
  });
});

describe("tools and tenants", () => {
  it("allows exactly the named tools; an absent or empty tools list allows none", () => {
    const cap = mintWith({ tools: ["search", "read_file"] });
    expect(allows(cap, { action: "tool.call", tool: "search" })).toBe(true);
    expect(allows(cap, { action: "tool.call", tool: "Search" })).toBe(false);
    expect(denied(check(cap, { action: "tool.call", tool: "deploy" })).reason).toContain('does not grant tool "deploy"');
    expect(denied(check(mintWith({ fs: [] }), { action: "tool.call", tool: "search" })).reason).toContain("grants no tools");
    expect(allows(mintWith({ tools: [] }), { action: "tool.call", tool: "search" })).toBe(false);
  });

  it("a link with tenants requires the request to name one of them", () => {
    const cap = restrict(mintWith({ tools: ["search"] }), { tenants: ["acme", "globex"] });
    expect(allows(cap, { action: "tool.call", tool: "search", tenant: "acme" })).toBe(true);
    expect(allows(cap, { action: "tool.call", tool: "search", tenant: "globex" })).toBe(true);
    const none = denied(check(cap, { action: "tool.call", tool: "search" }));
    expect(none.rule).toBe("tenants");
    expect(none.link).toBe(1);
    expect(none.reason).toContain("names no tenant");
    expect(denied(check(cap, { action: "tool.call", tool: "search", tenant: "initech" })).reason).toContain("not initech");
  });

  it("tenants in a grant, at any depth, must all hold", () => {
    const cap = narrow(mintWith({ tools: ["search"], tenants: ["acme", "globex"] }), { tools: ["search"], tenants: ["globex"] });
    expect(allows(cap, { action: "tool.call", tool: "search", tenant: "globex" })).toBe(true);
    expect(denied(check(cap, { action: "tool.call", tool: "search", tenant: "acme" })).link).toBe(1);
  });

  it("a link without tenants accepts a request that names one", () => {
    expect(allows(mintWith({ tools: ["search"] }), { action: "tool.call", tool: "search", tenant: "acme" })).toBe(true);
  });
});

describe("decisions", () => {
  it("name the capability, the denying link's index and id, the rule, and a reason", () => {
    const root = mintWith({ fs: [{ path: "/data", ops: ["read"] }], tools: ["t"] });
    const child = narrow(root, { fs: [{ path: "/data/a", ops: ["read"] }] });
    const grandchild = revocable(child).capability;

    const byChild = denied(check(grandchild, { action: "fs.read", path: "/data/b" }));
    expect(byChild).toMatchObject({ allowed: false, capabilityId: grandchild.id, code: "ERR_CAPABILITY_DENIED", link: 1, linkId: child.id, rule: "fs" });
    expect(byChild.reason).toMatch(new RegExp(`^link 1 \\(${child.id}\\) does not grant read on /data/b$`));

    const byRoot = denied(check(grandchild, { action: "fs.read", path: "/etc/passwd" }));
    expect(byRoot).toMatchObject({ link: 0, linkId: root.id, rule: "fs" });
    expect(byRoot.reason).toContain(`root capability ${root.id} (minted for alice)`);

    // The tool is granted by the root but not mentioned by the child's grant.
    expect(denied(check(grandchild, { action: "tool.call", tool: "t" }))).toMatchObject({ link: 1, rule: "tools" });
    expect(check(grandchild, { action: "fs.read", path: "/data/a/x" })).toEqual({ allowed: true, capabilityId: grandchild.id });
  });

  it("are frozen", () => {
    const cap = mintWith({ tools: ["t"] });
    expect(Object.isFrozen(check(cap, { action: "tool.call", tool: "x" }))).toBe(true);
  });

  it("report a dead capability before anything else: revoked, then expired, then scope, then budget", () => {
    const clock = createManualClock(T0);
    const root = mintWith({ tools: ["t"], maxUses: 1 }, clock);
    expect(authorize(root, { action: "tool.call", tool: "t" }).allowed).toBe(true);
    const r = revocable(restrict(root, { expiresAt: T0 + 10 }));
    const request: Request = { action: "tool.call", tool: "other" };
    expect(denied(check(r.capability, { action: "tool.call", tool: "t" })).code).toBe("ERR_BUDGET_EXHAUSTED");
    expect(denied(check(r.capability, request)).code).toBe("ERR_CAPABILITY_DENIED");
    clock.advance(10);
    expect(denied(check(r.capability, request)).code).toBe("ERR_EXPIRED");
    r.revoke("task finished");
    const d = denied(check(r.capability, request));
    expect(d.code).toBe("ERR_REVOKED");
    expect(d.reason).toContain("task finished");
  });
});

describe("typed errors from assertAuthorized", () => {
  const cases: readonly [string, () => void, new (...args: never[]) => AgentcapError, string, string, number][] = [
    ["CapabilityDenied", () => { assertAuthorized(mintWith({ tools: ["a"] }), { action: "tool.call", tool: "b" }); }, CapabilityDenied, "ERR_CAPABILITY_DENIED", "tools", 0],
    [
      "Expired",
      () => {
        const clock = createManualClock(T0);
        const cap = mintWith({ tools: ["a"], expiresAt: T0 + 1 }, clock);
        clock.advance(1);
        assertAuthorized(cap, { action: "tool.call", tool: "a" });
      },
      Expired,
      "ERR_EXPIRED",
      "expiresAt",
      0,
    ],
    [
      "Revoked",
      () => {
        const r = revocable(mintWith({ tools: ["a"] }));
        r.revoke();
        assertAuthorized(r.capability, { action: "tool.call", tool: "a" });
      },
      Revoked,
      "ERR_REVOKED",
      "revoked",
      1,
    ],
    [
      "BudgetExhausted (cost)",
      () => { assertAuthorized(mintWith({ tools: ["a"], budget: { cost: 1 } }), { action: "tool.call", tool: "a" }, { cost: 2 }); },
      BudgetExhausted,
      "ERR_BUDGET_EXHAUSTED",
      "budget.cost",
      0,
    ],
    [
      "BudgetExhausted (calls)",
      () => { assertAuthorized(mintWith({ tools: ["a"], budget: { calls: 0 } }), { action: "tool.call", tool: "a" }); },
      BudgetExhausted,
      "ERR_BUDGET_EXHAUSTED",
      "budget.calls",
      0,
    ],
  ];

  for (const [name, run, cls, code, rule, link] of cases) {
    it(`${name}: class, stable code, details`, () => {
      const e = thrown(run);
      expect(e).toBeInstanceOf(cls);
      expect(e).toBeInstanceOf(AgentcapError);
      expect(e).toBeInstanceOf(Error);
      const err = e as AgentcapError & { details: { capabilityId: string; link: number; linkId: string; rule: string } };
      expect(err.code).toBe(code);
      expect(err.name).toBe(cls.name);
      expect(err.details.rule).toBe(rule);
      expect(err.details.link).toBe(link);
      expect(err.details.capabilityId).toMatch(/^[0-9a-f-]{36}$/);
      expect(err.details.linkId).toMatch(/^[0-9a-f-]{36}$/);
      expect(err.message).toContain(err.details.linkId);
      expect(err.message.length).toBeGreaterThan(20);
    });
  }

  it("denialError maps each denial code to its class, carrying the decision's details", () => {
    const cap = mintWith({ tools: ["a"] });
    const d = denied(check(cap, { action: "tool.call", tool: "b" }));
    const e = denialError(d);
    expect(e).toBeInstanceOf(CapabilityDenied);
    expect(e.message).toBe(d.reason);
    expect(e.details).toEqual({ capabilityId: cap.id, link: 0, linkId: cap.id, rule: "tools", because: d.because });
    expect(d.because).not.toContain(cap.id);
  });

  it("every error class has its own stable code", () => {
    const details = { capabilityId: "c", link: 0, linkId: "c", rule: "r", because: "r" };
    expect(new CapabilityDenied("m", details).code).toBe("ERR_CAPABILITY_DENIED");
    expect(new Expired("m", details).code).toBe("ERR_EXPIRED");
    expect(new Revoked("m", details).code).toBe("ERR_REVOKED");
    expect(new BudgetExhausted("m", details).code).toBe("ERR_BUDGET_EXHAUSTED");
    expect(new InvalidInput("m").code).toBe("ERR_INVALID_INPUT");
    expect(new NotACapability("m").code).toBe("ERR_NOT_A_CAPABILITY");
    expect(new NotACapability("m")).toBeInstanceOf(InvalidInput);
    expect(new InvalidToken("m").code).toBe("ERR_INVALID_TOKEN");
    expect(new LimitExceeded("m", "maxReadBytes")).toMatchObject({ code: "ERR_LIMIT_EXCEEDED", limit: "maxReadBytes" });
    expect(new AgentcapError("m").code).toBe("ERR_AGENTCAP");
  });

  it("an allowed assertAuthorized charges like authorize", () => {
    const cap = singleUse(mintWith({ tools: ["a"] }));
    expect(() => { assertAuthorized(cap, { action: "tool.call", tool: "a" }); }).not.toThrow();
    expect(() => { assertAuthorized(cap, { action: "tool.call", tool: "a" }); }).toThrow(BudgetExhausted);
  });
});

describe("revocation", () => {
  it("revoke cascades to descendants and leaves the parent and siblings untouched", () => {
    const root = mintWith({ tools: ["a"] });
    const r = revocable(root);
    const sibling = revocable(root);
    const child = narrow(r.capability, { tools: ["a"] });
    const request: Request = { action: "tool.call", tool: "a" };
    r.revoke();
    expect(r.isRevoked()).toBe(true);
    expect(sibling.isRevoked()).toBe(false);
    expect(denied(check(child, request))).toMatchObject({ code: "ERR_REVOKED", link: 1, linkId: r.capability.id });
    expect(allows(root, request)).toBe(true);
    expect(allows(sibling.capability, request)).toBe(true);
    expect(allows(narrow(root, { tools: ["a"] }), request)).toBe(true);
  });

  it("revoking twice keeps the first reason", () => {
    const r = revocable(mintWith({ tools: ["a"] }));
    r.revoke("first");
    r.revoke("second");
    expect(denied(check(r.capability, { action: "tool.call", tool: "a" })).reason).toContain("first");
  });

  it("revocationSignal aborts with a Revoked error when the capability or an ancestor is revoked", () => {
    const r = revocable(mintWith({ tools: ["a"] }));
    const child = restrict(narrow(r.capability, { tools: ["a"] }), { maxUses: 5 });
    const { signal, dispose } = revocationSignal(child);
    let fired = 0;
    signal.addEventListener("abort", () => fired++);
    expect(signal.aborted).toBe(false);
    r.revoke("subtask cancelled");
    expect(signal.aborted).toBe(true);
    expect(fired).toBe(1);
    expect(signal.reason).toBeInstanceOf(Revoked);
    expect((signal.reason as Revoked).details).toMatchObject({ capabilityId: child.id, link: 1, linkId: r.capability.id, rule: "revoked" });
    expect((signal.reason as Revoked).message).toContain("subtask cancelled");
    dispose();
  });

  it("revocationSignal of an already revoked capability is aborted at once", () => {
    const r = revocable(mintWith({ tools: ["a"] }));
    r.revoke();
    expect(revocationSignal(narrow(r.capability, { tools: ["a"] })).signal.aborted).toBe(true);
  });

  it("revocationSignal stops watching once disposed, and never fires for an unrevocable chain", () => {
    const r = revocable(mintWith({ tools: ["a"] }));
    const { signal, dispose } = revocationSignal(r.capability);
    dispose();
    r.revoke();
    expect(signal.aborted).toBe(false);
    const plain = revocationSignal(narrow(mintWith({ tools: ["a"] }), { tools: ["a"] }));
    expect(plain.signal.aborted).toBe(false);
    plain.dispose();
  });
});

describe("attenuation helpers", () => {
  const root = mintWith({
    tools: ["search", "read_file"],
    fs: [{ path: "/data", ops: ["read", "write", "list", "delete"] }],
    http: [{ origin: "https://api.example.com", methods: ["GET", "POST", "HEAD"] }],
    db: [{ model: "User", ops: ["read", "update"] }, { model: "Order", ops: ["read"] }],
    exec: [{ program: "/bin/ls" }],
  });

  it("narrowToRow confines to one row of one model", () => {
    const row = narrowToRow(root, { model: "User", id: 7 });
    expect(allows(row, { action: "db.read", model: "User", fields: ["name"], scope: { id: 7 } })).toBe(true);
    expect(allows(row, { action: "db.update", model: "User", fields: ["name"], scope: { id: 7 } })).toBe(true);
    expect(allows(row, { action: "db.read", model: "User", fields: ["name"], scope: { id: 8 } })).toBe(false);
    expect(allows(row, { action: "db.read", model: "User", fields: ["name"], scope: {} })).toBe(false);
    expect(allows(row, { action: "db.read", model: "Order", fields: [], scope: { id: 7 } })).toBe(false);
    expect(allows(row, { action: "db.delete", model: "User", fields: [], scope: { id: 7 } })).toBe(false); // the root never granted delete
    expect(allows(row, { action: "tool.call", tool: "search" })).toBe(false);
    expect(allows(row, { action: "fs.read", path: "/data/a" })).toBe(false);
  });

  it("narrowToRow takes ops, fields and another key column", () => {
    const row = narrowToRow(root, { model: "User", id: "u-7", key: "uuid", ops: ["read"], fields: ["name"] });
    expect(allows(row, { action: "db.read", model: "User", fields: ["name"], scope: { uuid: "u-7" } })).toBe(true);
    expect(allows(row, { action: "db.read", model: "User", fields: ["email"], scope: { uuid: "u-7" } })).toBe(false);
    expect(allows(row, { action: "db.update", model: "User", fields: ["name"], scope: { uuid: "u-7" } })).toBe(false);
    expect(row.grant).toEqual({ db: [{ model: "User", ops: ["read"], fields: ["name"], scope: { uuid: "u-7" } }] });
  });

  it("onlyTool keeps one tool and the resource domains it may use", () => {
    const one = onlyTool(root, "read_file");
    expect(allows(one, { action: "tool.call", tool: "read_file" })).toBe(true);
    expect(allows(one, { action: "tool.call", tool: "search" })).toBe(false);
    expect(allows(one, { action: "fs.write", path: "/data/a" })).toBe(true);
    expect(allows(onlyTool(root, "deploy"), { action: "tool.call", tool: "deploy" })).toBe(false);
  });

  it("readOnly removes writes, non-GET methods, database writes and commands", () => {
    const ro = readOnly(root);
    expect(allows(ro, { action: "fs.read", path: "/data/a" })).toBe(true);
    expect(allows(ro, { action: "fs.list", path: "/data" })).toBe(true);
    expect(allows(ro, { action: "fs.write", path: "/data/a" })).toBe(false);
    expect(allows(ro, { action: "fs.delete", path: "/data/a" })).toBe(false);
    expect(allows(ro, { action: "http.request", method: "GET", url: "https://api.example.com/" })).toBe(true);
    expect(allows(ro, { action: "http.request", method: "HEAD", url: "https://api.example.com/" })).toBe(true);
    expect(allows(ro, { action: "http.request", method: "POST", url: "https://api.example.com/" })).toBe(false);
    expect(allows(ro, { action: "db.read", model: "User", fields: [], scope: {} })).toBe(true);
    expect(allows(ro, { action: "db.update", model: "User", fields: [], scope: {} })).toBe(false);
    expect(allows(ro, { action: "exec", argv: ["/bin/ls"], cwd: "/" })).toBe(false);
    expect(allows(ro, { action: "tool.call", tool: "search" })).toBe(true);
  });

  it("readOnly of a capability with no write access left narrows to nothing writable, and still to no commands", () => {
    const writeOnly = mintWith({ fs: [{ path: "/out", ops: ["write"] }] });
    const ro = readOnly(writeOnly);
    expect(allows(ro, { action: "fs.write", path: "/out/a" })).toBe(false);
    expect(allows(ro, { action: "fs.read", path: "/out/a" })).toBe(false);
  });

  it("forSeconds allows until the window closes on the mint's clock", () => {
    const clock = createManualClock(T0);
    const cap = forSeconds(mintWith({ tools: ["a"] }, clock), 60);
    expect(expiresAt(cap)).toBe(T0 + 60_000);
    expect(clockTime(cap)).toBe(T0);
    clock.advance(59_999);
    expect(allows(cap, { action: "tool.call", tool: "a" })).toBe(true);
    clock.advance(1);
    expect(denied(check(cap, { action: "tool.call", tool: "a" }))).toMatchObject({ code: "ERR_EXPIRED", link: 1, rule: "expiresAt" });
  });

  it("singleUse succeeds once, including through descendants", () => {
    const once = singleUse(mintWith({ tools: ["a"] }));
    const child = narrow(once, { tools: ["a"] });
    expect(authorize(child, { action: "tool.call", tool: "a" }).allowed).toBe(true);
    expect(denied(authorize(once, { action: "tool.call", tool: "a" }))).toMatchObject({ code: "ERR_BUDGET_EXHAUSTED", rule: "maxUses", link: 1 });
    expect(denied(authorize(child, { action: "tool.call", tool: "a" })).reason).toContain("single-use");
  });

  it("no helper widens: each result's decisions are a subset of the original's", () => {
    const narrowed = narrow(root, { tools: ["search"], fs: [{ path: "/data/a", ops: ["read"] }] });
    const derived = [readOnly(narrowed), onlyTool(narrowed, "read_file"), narrowToRow(narrowed, { model: "User", id: 1 }), forSeconds(narrowed, 1), singleUse(narrowed)];
    const probes: Request[] = [
      { action: "tool.call", tool: "read_file" },
      { action: "fs.read", path: "/data/b" },
      { action: "fs.write", path: "/data/a" },
      { action: "db.read", model: "User", fields: [], scope: { id: 1 } },
      { action: "exec", argv: ["/bin/ls"], cwd: "/" },
    ];
    for (const cap of derived) for (const p of probes) expect(allows(cap, p)).toBe(false);
  });
});

describe("createMint", () => {
  it("passes the policy the principal with defaults, and records who and when", () => {
    const clock = createManualClock(T0);
    const seen: unknown[] = [];
    const mint = createMint({
      issuer: "app",
      clock,
      policy: (p) => {
        seen.push(p);
        return { tools: ["a"] };
      },
    });
    expect(mint.issuer).toBe("app");
    const cap = mint.issue({ id: "bob" }, { requestId: "r-9" });
    expect(seen).toEqual([{ id: "bob", tenants: [], roles: [] }]);
    expect(Object.isFrozen(seen[0])).toBe(true);
    expect(cap.mint).toEqual({ principal: "bob", tenants: [], roles: [], requestId: "r-9", issuedAt: T0, issuer: "app", mintId: mint.id });
    expect(cap.depth).toBe(0);
    expect(cap.parentId).toBeNull();
    expect(clockTime(cap)).toBe(T0);
    const other = mint.issue({ id: "bob", tenants: ["acme"], roles: ["admin"] });
    expect(other.mint.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(other.mint.tenants).toEqual(["acme"]);
    expect(other.mint.roles).toEqual(["admin"]);
    expect(other.id).not.toBe(cap.id);
  });

  it("maps roles and tenants to grants through the policy", () => {
    const mint = createMint({
      issuer: "app",
      policy: (p) => (p.roles.includes("admin") ? { tools: ["deploy", "search"] } : p.roles.includes("user") ? { tools: ["search"], tenants: p.tenants } : null),
    });
    expect(allows(mint.issue({ id: "a", roles: ["admin"] }), { action: "tool.call", tool: "deploy" })).toBe(true);
    const user = mint.issue({ id: "u", roles: ["user"], tenants: ["acme"] });
    expect(allows(user, { action: "tool.call", tool: "deploy" })).toBe(false);
    expect(allows(user, { action: "tool.call", tool: "search", tenant: "acme" })).toBe(true);
  });

  it("a policy returning null refuses with CapabilityDenied", () => {
    const mint = createMint({ issuer: "app", policy: () => null });
    const e = thrown(() => mint.issue({ id: "mallory" }));
    expect(e).toBeInstanceOf(CapabilityDenied);
    expect((e as CapabilityDenied).details.rule).toBe("policy");
    expect((e as CapabilityDenied).message).toContain("mallory");
  });

  it("authenticates through the authenticator, sync or async, then applies the policy", async () => {
    const headers = { authorization: "Bearer alice-token" };
    const mint = createMint<typeof headers>({
      issuer: "app",
      policy: (p) => (p.id === "alice" ? { tools: ["search"] } : null),
      authenticator: async (h) => {
        await Promise.resolve();
        if (h.authorization !== "Bearer alice-token") throw new Error("bad token");
        return { id: "alice", roles: ["user"] };
      },
    });
    const cap = await mint.authenticate(headers, { requestId: "http-1" });
    expect(cap.mint).toMatchObject({ principal: "alice", roles: ["user"], requestId: "http-1", issuer: "app" });
    expect(allows(cap, { action: "tool.call", tool: "search" })).toBe(true);
    await expect(mint.authenticate({ authorization: "Bearer forged" })).rejects.toThrow("bad token");

    const sync = createMint<string>({ issuer: "app", policy: () => null, authenticator: (id) => ({ id }) });
    await expect(sync.authenticate("bob")).rejects.toBeInstanceOf(CapabilityDenied);
  });
});

describe("content hash and lineage", () => {
  const grant: Grant = { tools: ["a", "b"], fs: [{ path: "/data", ops: ["read"] }] };

  it("is a SHA-256 hex digest, stable across reads", () => {
    const cap = mintWith(grant);
    expect(cap.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(cap.hash).toBe(cap.hash);
  });

  it("depends on content, not on object identity or key order", () => {
    // One mint (the root's record names it), handing out the same grant written two ways.
    const grants: Grant[] = [{ tools: ["a", "b"], fs: [{ path: "/data", ops: ["read"] }] }, { fs: [{ ops: ["read"], path: "/data" }], tools: ["a", "b"] }];
    const mint = createMint({ issuer: "behaviour", clock: createManualClock(T0), policy: () => grants.shift() ?? {} });
    const a = mint.issue({ id: "alice", tenants: ["acme"] }, { requestId: "req-1" });
    const b = mint.issue({ id: "alice", tenants: ["acme"] }, { requestId: "req-1" });
    expect(a.id).not.toBe(b.id);
    expect(a.hash).toBe(b.hash);
    expect(narrow(a, { tools: ["a"] }).hash).toBe(narrow(b, { tools: ["a"] }).hash);
  });

  it("revocable links carry their caretaker's labels, which are part of the content", () => {
    const root = mintWith(grant);
    const labelled = revocable(root, { labels: { purpose: "s-1", step: "summarize" } }).capability;
    expect(labelled.lineage.at(-1)?.labels).toEqual({ purpose: "s-1", step: "summarize" });
    expect(labelled.lineage.at(-1)?.revocable).toBe(true);
    expect(root.lineage[0]?.labels).toEqual({});
    expect(labelled.hash).not.toBe(revocable(root).capability.hash);
    expect(labelled.hash).not.toBe(revocable(root, { labels: { purpose: "s-2", step: "summarize" } }).capability.hash);
    // Labels grant nothing.
    expect(allows(labelled, { action: "tool.call", tool: "summarize" })).toBe(false);
  });

  it.each(["session", "task", "tool", "agent"])("refuses the reserved label %s through the public revocable, which only agentcap's own caretakers set", (name) => {
    const root = mintWith(grant);
    expect(() => revocable(root, { labels: { [name]: "sess-of-alice-42" } })).toThrow(InvalidInput);
    expect(() => revocable(root, { labels: { purpose: "x", [name]: "y" } })).toThrow(new RegExp(`labels\\.${name} is reserved for agentcap's own caretakers`));
    const attributed = caretaker(root, { [name]: "s-1" }).capability;
    expect(attributed.lineage.at(-1)?.labels).toEqual({ [name]: "s-1" });
  });

  it("differs across different chains", () => {
    const root = mintWith(grant);
    const hashes = [
      root.hash,
      mintWith({ tools: ["a"] }).hash,
      createMint({ issuer: "other", clock: createManualClock(T0), policy: () => grant }).issue({ id: "alice", tenants: ["acme"] }, { requestId: "req-1" }).hash,
      mintWith(grant, createManualClock(T0 + 1)).hash,
      narrow(root, { tools: ["a"] }).hash,
      narrow(root, { tools: ["b"] }).hash,
      narrow(narrow(root, { tools: ["a"] }), { tools: ["a"] }).hash,
      restrict(root, { maxUses: 1 }).hash,
      restrict(root, { maxUses: 2 }).hash,
      narrow(mintWith({ tools: ["a"] }), { tools: ["a"] }).hash,
    ];
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it("lineage lists every link from the root, with ids, hashes, grants, conditions and revocability", () => {
    const root = mintWith({ ...grant, maxUses: 10 });
    const narrowed = narrow(root, { tools: ["a"], expiresAt: T0 + 5 });
    const forwarder = revocable(narrowed).capability;
    const limited = restrict(forwarder, { budget: { calls: 3 } });
    const lineage = limited.lineage;
    expect(lineage.map((l) => l.id)).toEqual([root.id, narrowed.id, forwarder.id, limited.id]);
    expect(lineage.map((l) => l.hash)).toEqual([root.hash, narrowed.hash, forwarder.hash, limited.hash]);
    expect(lineage.map((l) => l.revocable)).toEqual([false, false, true, false]);
    expect(lineage.map((l) => l.grant)).toEqual([{ ...grant, maxUses: 10 }, { tools: ["a"], expiresAt: T0 + 5 }, null, null]);
    expect(lineage.map((l) => l.conditions)).toEqual([{ maxUses: 10 }, { expiresAt: T0 + 5 }, {}, { budget: { calls: 3 } }]);
    expect(limited.depth).toBe(3);
    expect(limited.parentId).toBe(forwarder.id);
    expect(JSON.parse(JSON.stringify(lineage))).toEqual(lineage);
  });
});

describe("grants and labels read once", () => {
  /** Whether every object and array inside `value` is frozen. */
  const deepFrozen = (value: unknown): boolean =>
    typeof value !== "object" || value === null || (Object.isFrozen(value) && Object.values(value).every(deepFrozen));

  it.each([
    ["an ordinary grant", { tools: ["a"], fs: [{ path: "/data", ops: ["read"] }], db: [{ model: "note", ops: ["read"], scope: { owner: "alice" } }] }],
    // Argument patterns in an approval rule are left to the schemas, which build the copy themselves.
    ["a grant only the schemas accept", { tools: ["a"], approval: [{ tools: ["a"], input: { to: { prefix: "acme" } }, approvers: ["bob"] }] }],
  ] as [string, Grant][])("reuses %s a link already holds, which is deep-frozen and decides alike", (_label, grant) => {
    const root = mintWith({ tools: ["a"], fs: [{ path: "/data", ops: ["read"] }], db: [{ model: "note", ops: ["read"] }] });
    const first = narrow(root, grant);
    const held = first.grant as Grant;
    expect(held).not.toBe(grant);
    expect(deepFrozen(held)).toBe(true);
    const second = narrow(root, held);
    expect(second.grant).toBe(held);
    // Another link (its own id), with the same content: the same hash.
    expect(second.id).not.toBe(first.id);
    expect(second.hash).toBe(first.hash);
    for (const r of [{ action: "tool.call", tool: "a" }, { action: "tool.call", tool: "b" }, { action: "fs.read", path: "/data/x" }] as Request[]) {
      expect(check(second, r).allowed).toBe(check(first, r).allowed);
    }
  });

  it("reuses a caretaker's labels a link already holds, and still refuses reserved names through the public revocable", () => {
    const root = mintWith({ tools: ["a"] });
    const labelled = caretaker(root, { tool: "a", step: "s" }).capability;
    const labels = labelled.lineage.at(-1)?.labels ?? {};
    expect(Object.isFrozen(labels)).toBe(true);
    expect(caretaker(root, labels).capability.lineage.at(-1)?.labels).toBe(labels);
    expect(() => revocable(root, { labels })).toThrow(/labels\.tool is reserved/);
  });
});

describe("clocks and expiry helpers", () => {
  it("expiresAt is the earliest expiry in the chain, or null", () => {
    const root = mintWith({ tools: ["a"] });
    expect(expiresAt(root)).toBeNull();
    const later = restrict(root, { expiresAt: T0 + 100 });
    expect(expiresAt(later)).toBe(T0 + 100);
    expect(expiresAt(narrow(later, { tools: ["a"], expiresAt: T0 + 500 }))).toBe(T0 + 100);
    expect(expiresAt(restrict(later, { expiresAt: T0 + 50 }))).toBe(T0 + 50);
  });

  it("a manual clock moves only when told to", () => {
    const clock = createManualClock(5);
    expect(clock.now()).toBe(5);
    clock.advance(10);
    expect(clock.now()).toBe(15);
    clock.set(100);
    expect(clock.now()).toBe(100);
    expect(typeof systemClock.now()).toBe("number");
  });
});

describe("the system clock cannot be moved by code that replaces the Date global", () => {
  const realNow = Date.now;
  const RealDate = globalThis.Date;
  const expired = async () => {
    const cap = forSeconds(createMint({ issuer: "clock", policy: () => ({ tools: ["a"] }) }).issue({ id: "alice" }), 0.05);
    await new Promise((resolve) => setTimeout(resolve, 100));
    return cap;
  };
  const refused = (cap: Capability) => check(cap, { action: "tool.call", tool: "a" });

  it("setting Date.now back a minute does not revive an expired capability", async () => {
    const cap = await expired();
    try {
      const now = realNow();
      Date.now = () => now - 60_000;
      expect(refused(cap)).toMatchObject({ allowed: false, code: "ERR_EXPIRED" });
    } finally {
      Date.now = realNow;
    }
  });

  it("replacing globalThis.Date does not revive an expired capability", async () => {
    const cap = await expired();
    const now = realNow();
    class PastDate extends RealDate {
      static override now(): number {
        return now - 60_000;
      }
    }
    try {
      globalThis.Date = PastDate as DateConstructor;
      expect(refused(cap)).toMatchObject({ allowed: false, code: "ERR_EXPIRED" });
      expect(systemClock.now()).toBeGreaterThanOrEqual(now);
    } finally {
      globalThis.Date = RealDate;
    }
  });

  it("replacing performance.now does not move agentcap's monotonic clock", () => {
    const original = performance.now.bind(performance);
    const before = monotonicClock.now();
    try {
      performance.now = () => 0;
      expect(monotonicClock.now()).toBeGreaterThanOrEqual(before);
    } finally {
      performance.now = original;
    }
  });
});

describe("classifyAddress", () => {
  const table: readonly [string, AddressClass][] = [
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.0.1", "private"],
    ["100.64.0.1", "private"],
    ["169.254.169.254", "link-local"],
    ["169.254.0.1", "link-local"],
    ["0.0.0.0", "reserved"],
    ["224.0.0.1", "reserved"],
    ["255.255.255.255", "reserved"],
    ["192.0.2.1", "reserved"],
    ["::1", "loopback"],
    ["[::1]", "loopback"],
    ["::", "reserved"],
    ["fe80::1", "link-local"],
    ["febf::1", "link-local"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["ff02::1", "reserved"],
    ["2001:db8::1", "reserved"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::FFFF:7F00:0001", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:169.254.169.254", "link-local"],
    ["::ffff:8.8.8.8", "public"],
    ["::127.0.0.1", "loopback"],
    ["64:ff9b::a00:1", "private"],
    ["64:ff9b::7f00:1", "loopback"],
    ["64:ff9b::a9fe:a9fe", "link-local"],
    ["64:ff9b::808:808", "public"],
    ["2002:7f00:1::", "loopback"],
    ["2002:a00:1::1", "private"],
    ["2002:a9fe:a9fe::", "link-local"],
    ["2002:808:808::1", "public"],
    ["::ffff:0:7f00:1", "loopback"],
    ["::ffff:0:a00:1", "private"],
    ["64:ff9b:1::a00:1", "reserved"],
    ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"],
    ["8.8.8.8", "public"],
    ["1.1.1.1", "public"],
    ["93.184.216.34", "public"],
    ["172.32.0.1", "public"],
    ["2606:4700:4700::1111", "public"],
    ["2a00:1450:4001::200e", "public"],
    ["localhost", "reserved"],
    ["example.com", "reserved"],
    ["127.1", "reserved"],
    ["0x7f000001", "reserved"],
    ["fe80::1%eth0", "reserved"],
    ["", "reserved"],
  ];
  for (const [address, expected] of table) {
    it(`${address || "(empty)"} is ${expected}`, () => {
      expect(classifyAddress(address)).toBe(expected);
    });
  }
});
