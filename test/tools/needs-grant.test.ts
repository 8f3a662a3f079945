import { describe, expect, it } from "vitest";
import { createMint } from "../../src/kernel/mint.ts";
import type { Grant } from "../../src/kernel/grant.ts";
import type { Request } from "../../src/kernel/request.ts";
import { grantForNeeds } from "../../src/tools/needs-grant.ts";
import { check, narrow } from "../../src/index.ts";

const EVERYTHING: Grant = {
  tools: ["a", "b"],
  fs: [{ path: "/", ops: ["read", "write", "list", "delete"] }],
  http: [{ origin: "https://api.example.com", methods: ["GET", "POST"] }, { origin: "http://127.0.0.1:8080", methods: ["GET"] }],
  db: [{ model: "Customer", ops: ["read", "update"] }],
  exec: [{ program: "/usr/bin/git", cwd: "/repo", env: ["HOME"] }],
};
const root = createMint({ issuer: "t", policy: () => EVERYTHING }).issue({ id: "root" });

/** The needs are allowed by the narrowed capability; each neighbour is not, though the root allows it. */
const cases: [string, Request[], Request[]][] = [
  ["tool calls", [{ action: "tool.call", tool: "a" }], [{ action: "tool.call", tool: "b" }]],
  [
    "files: exact path and op, no subtree",
    [{ action: "fs.read", path: "/srv/a.txt" }, { action: "fs.write", path: "/srv/out" }],
    [
      { action: "fs.write", path: "/srv/a.txt" },
      { action: "fs.read", path: "/srv/out" },
      { action: "fs.read", path: "/srv/out/x" },
      { action: "fs.read", path: "/srv/a.txt.bak" },
    ],
  ],
  [
    "HTTP: method, origin and path",
    [{ action: "http.request", method: "GET", url: "https://api.example.com/v1/items?page=2" }],
    [
      { action: "http.request", method: "POST", url: "https://api.example.com/v1/items" },
      { action: "http.request", method: "GET", url: "https://api.example.com/v1/other" },
      { action: "http.request", method: "GET", url: "https://api.example.com/v1/items-all" },
    ],
  ],
  [
    "databases: op, model, fields and scope",
    [{ action: "db.read", model: "Customer", fields: ["name"], scope: { id: 7 } }],
    [
      { action: "db.read", model: "Customer", fields: ["name", "email"], scope: { id: 7 } },
      { action: "db.read", model: "Customer", fields: ["name"], scope: { id: 8 } },
      { action: "db.update", model: "Customer", fields: ["name"], scope: { id: 7 } },
    ],
  ],
  [
    "commands: exact argv",
    [{ action: "exec", argv: ["/usr/bin/git", "status"], cwd: "/repo" }],
    [
      { action: "exec", argv: ["/usr/bin/git", "push"], cwd: "/repo" },
      { action: "exec", argv: ["/usr/bin/git", "status", "--porcelain"], cwd: "/repo" },
      { action: "exec", argv: ["/usr/bin/git", "status"], cwd: "/repo", env: ["HOME"] },
    ],
  ],
];

describe("grantForNeeds", () => {
  it.each(cases)("%s", (_what, needs, neighbours) => {
    const narrowed = narrow(root, grantForNeeds("t", needs));
    for (const need of needs) expect(check(narrowed, need).allowed, JSON.stringify(need)).toBe(true);
    for (const n of neighbours) {
      expect(check(root, n).allowed, `root allows ${JSON.stringify(n)}`).toBe(true);
      expect(check(narrowed, n).allowed, `narrowed denies ${JSON.stringify(n)}`).toBe(false);
    }
  });

  it("grants nothing for no needs, and leaves out every domain no need mentions", () => {
    expect(grantForNeeds("t", [])).toEqual({});
    const narrowed = narrow(root, grantForNeeds("t", [{ action: "fs.read", path: "/a" }]));
    expect(check(narrowed, { action: "tool.call", tool: "a" }).allowed).toBe(false);
  });

  it("defers private-network decisions to the links above", () => {
    const grant = grantForNeeds("t", [{ action: "http.request", method: "GET", url: "http://127.0.0.1:8080/health" }]);
    const request: Request = { action: "http.request", method: "GET", url: "http://127.0.0.1:8080/health" };
    expect(check(narrow(root, grant), request).allowed).toBe(true);
    const publicOnly = createMint({ issuer: "t", policy: () => ({ http: [{ origin: "https://api.example.com", methods: ["GET"] }] }) }).issue({ id: "p" });
    const hostname: Request = { action: "http.request", method: "GET", url: "https://api.example.com/x", address: "10.0.0.5" };
    expect(check(narrow(publicOnly, grantForNeeds("t", [hostname])), hostname)).toMatchObject({ allowed: false, link: 0, rule: "http.address" });
  });

  it("confines to the needs' tenants only when every need names one", () => {
    expect(grantForNeeds("t", [{ action: "fs.read", path: "/a", tenant: "acme" }])).toMatchObject({ tenants: ["acme"] });
    expect(grantForNeeds("t", [{ action: "fs.read", path: "/a", tenant: "acme" }, { action: "fs.read", path: "/b" }])).not.toHaveProperty("tenants");
  });

  it("names the bad need when a tool declares an invalid request", () => {
    expect(() => grantForNeeds("reader", [{ action: "fs.read", path: "/ok" }, { action: "fs.read", path: "../etc/passwd" }])).toThrow(
      /^tool reader: need 1 is not a valid request: invalid request: path: /,
    );
    expect(() => grantForNeeds("reader", [{ action: "fs.chmod" } as unknown as Request])).toThrow(/need 0 is not a valid request: .*action: must be one of/);
  });
});
