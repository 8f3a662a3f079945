import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { DEFAULT_BACKLOG, DEFAULT_HTTP_LIMITS, DEFAULT_SESSION_LIMITS, loadGatewayConfig, MAX_CONFIG_BYTES, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway } from "../../src/mcp/gateway.ts";
import { configuredPolicy } from "../../src/mcp/policy.ts";
import { makeFixture } from "./support.ts";

const base = {
  issuer: "t",
  keys: { file: "keys.json" },
  tokenStore: { kind: "sqlite", path: "tokens.db" },
  audit: { kind: "sqlite", path: "audit.db" },
  policy: { roles: { r: { tools: ["read_file"] } }, principals: { alice: { roles: ["r"] } } },
};

function problems(value: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseGatewayConfig(value, "/srv/gw", env);
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInput);
    return (e as Error).message;
  }
  throw new Error("expected the configuration to be refused");
}

describe("gateway configuration", () => {
  it("resolves relative paths against the file's folder and fills defaults", () => {
    const c = parseGatewayConfig({ ...base, tools: { files: { root: "ws" } } }, "/srv/gw");
    expect(c.listen).toEqual({ host: "127.0.0.1", port: 3333, backlog: DEFAULT_BACKLOG, limits: DEFAULT_HTTP_LIMITS, allowedHosts: [], allowedOrigins: [] });
    expect(c.keys.file).toBe("/srv/gw/keys.json");
    expect(c.tokenStore).toEqual({ kind: "sqlite", path: "/srv/gw/tokens.db" });
    expect(c.tools.files?.root).toBe("/srv/gw/ws");
  });

  it.each<readonly [unknown, string]>([
    [{ ...base, issuer: "" }, "issuer: must not be empty"],
    [{ ...base, extra: 1 }, 'Unrecognized key: "extra"'],
    [{ ...base, listen: { port: 70000 } }, "listen.port"],
    [{ ...base, listen: { limits: { headersTimeoutMs: 0 } } }, "listen.limits.headersTimeoutMs: must be a whole number of milliseconds from 1 to 2147483647"],
    [{ ...base, listen: { limits: { headersTimeoutMs: 1.5 } } }, "listen.limits.headersTimeoutMs: must be a whole number of milliseconds"],
    [{ ...base, listen: { limits: { headersTimeoutMs: "10s" } } }, "listen.limits.headersTimeoutMs: must be a whole number of milliseconds"],
    [{ ...base, listen: { limits: { requestTimeoutMs: -1 } } }, "listen.limits.requestTimeoutMs: must be a whole number of milliseconds from 1 to 2147483647"],
    [{ ...base, listen: { limits: { requestTimeoutMs: 2 ** 31 } } }, "listen.limits.requestTimeoutMs: must be a whole number of milliseconds"],
    [{ ...base, listen: { limits: { requestTimeoutMs: Number.NaN } } }, "listen.limits.requestTimeoutMs: must be a whole number of milliseconds"],
    [{ ...base, listen: { limits: { maxHeaderBytes: 100 } } }, "listen.limits.maxHeaderBytes: must be a whole number of bytes from 1024 to 1048576"],
    [{ ...base, listen: { limits: { maxHeaderBytes: 2 ** 21 } } }, "listen.limits.maxHeaderBytes: must be a whole number of bytes from 1024 to 1048576"],
    [{ ...base, listen: { limits: { maxBodyBytes: 0 } } }, "listen.limits.maxBodyBytes: must be a whole number of bytes from 1 to 1073741824"],
    [{ ...base, listen: { limits: { maxBodyBytes: Infinity } } }, "listen.limits.maxBodyBytes: must be a whole number of bytes"],
    [{ ...base, listen: { limits: { maxBodyBytes: null } } }, "listen.limits.maxBodyBytes: must be a whole number of bytes"],
    [{ ...base, listen: { limits: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } } }, "listen.limits.headersTimeoutMs: must not be more than requestTimeoutMs (1000)"],
    [{ ...base, listen: { limits: { headersTimeoutMs: 60_000 } } }, "listen.limits.headersTimeoutMs: must not be more than requestTimeoutMs (30000)"],
    [{ ...base, listen: { limits: { bodyTimeoutMs: 1 } } }, 'Unrecognized key: "bodyTimeoutMs"'],
    [{ ...base, listen: { limits: { keepAliveTimeoutMs: 0 } } }, "listen.limits.keepAliveTimeoutMs: must be a whole number of milliseconds from 1 to 2147483647"],
    [{ ...base, listen: { limits: { keepAliveTimeoutMs: "65s" } } }, "listen.limits.keepAliveTimeoutMs: must be a whole number of milliseconds"],
    [{ ...base, listen: { backlog: 0 } }, "listen.backlog: must be a whole number of connections from 1 to 65535"],
    [{ ...base, listen: { backlog: 1e6 } }, "listen.backlog: must be a whole number of connections from 1 to 65535"],
    [{ ...base, listen: { backlog: 10.5 } }, "listen.backlog: must be a whole number of connections"],
    [{ ...base, listen: { limits: "fast" } }, "listen.limits"],
    [{ ...base, sessions: { idleTimeoutMs: 0 } }, "sessions.idleTimeoutMs: must be a whole number of milliseconds from 1 to 2147483647"],
    [{ ...base, sessions: { max: 0 } }, "sessions.max: must be a whole number of sessions from 1 to 1000000"],
    [{ ...base, sessions: { maxPerToken: 2.5 } }, "sessions.maxPerToken: must be a whole number of sessions"],
    [{ ...base, sessions: { maxConcurrentCalls: 0 } }, "sessions.maxConcurrentCalls: must be a whole number of calls from 1 to 100000"],
    [{ ...base, sessions: { maxQueuedCalls: -1 } }, "sessions.maxQueuedCalls: must be a whole number of calls from 0 to 1000000"],
    [{ ...base, sessions: { maxCallsPerSession: 0 } }, "sessions.maxCallsPerSession: must be a whole number of calls from 1 to 100000"],
    [{ ...base, sessions: { ttl: 5 } }, 'Unrecognized key: "ttl"'],
    [{ ...base, oauth: {} }, "oauth.issuer"],
    [{ ...base, oauth: { issuer: "idp.example.com" } }, "oauth.issuer: must be an http(s) URL (the provider's issuer identifier"],
    [{ ...base, oauth: { issuer: "https://idp.example", jwksUri: "ftp://idp.example/keys" } }, "oauth.jwksUri: must be an http(s) URL"],
    [{ ...base, oauth: { issuer: "https://idp.example", algorithms: ["HS256"] } }, "oauth.algorithms.0"],
    [{ ...base, oauth: { issuer: "https://idp.example", algorithms: ["none"] } }, "oauth.algorithms.0"],
    [{ ...base, oauth: { issuer: "https://idp.example", scopes: ["two words"] } }, "oauth.scopes.0: must be a scope token"],
    [{ ...base, oauth: { issuer: "https://idp.example", claims: { email: "email" } } }, 'Unrecognized key: "email"'],
    [{ ...base, listen: { allowedHosts: "mcp.example.com" } }, "listen.allowedHosts: Invalid input: expected array"],
    ...["", "http://mcp.example.com", "mcp.example.com/mcp", "user@mcp.example.com", "mcp example.com", "mcp.example.com:", "mcp.example.com:99999", "::1", "[::1"].map(
      (h) => [{ ...base, listen: { allowedHosts: ["ok.example", h] } }, 'listen.allowedHosts.1: must be a host name or IP address, optionally with a port, such as "mcp.example.com"'] as [unknown, string],
    ),
    [{ ...base, listen: { allowedOrigins: ["app.example.com"] } }, "listen.allowedOrigins.0: is not a valid URL origin"],
    [{ ...base, listen: { allowedOrigins: ["https://app.example.com/"] } }, "listen.allowedOrigins.0: must be written in canonical form: https://app.example.com"],
    [{ ...base, listen: { allowedOrigins: ["HTTPS://App.Example.com:443"] } }, "listen.allowedOrigins.0: must be written in canonical form: https://app.example.com"],
    [{ ...base, listen: { allowedOrigins: ["ftp://app.example.com"] } }, "listen.allowedOrigins.0: must use http: or https:"],
    [{ ...base, listen: { allowedOrigins: ["null"] } }, "listen.allowedOrigins.0: is not a valid URL origin"],
    [{ ...base, listen: { allowedOrigins: [3] } }, "listen.allowedOrigins.0"],
    [{ ...base, keys: {} }, "keys: needs file"],
    [{ ...base, keys: { publicKeys: { one: "x" } } }, "keys.publicKeys.one"],
    [{ ...base, tokenStore: { kind: "redis" } }, "tokenStore.kind"],
    [{ ...base, audit: { kind: "postgres", schema: "Bad-Schema", url: "postgres://x" } }, "audit.schema: must be a lower-case identifier"],
    [{ ...base, policy: { roles: { r: { tools: ["a"], fs: [{ path: "rel", ops: ["chmod"] }] } }, principals: {} } }, "policy.roles.r"],
    [{ ...base, policy: { roles: { r: { tools: ["a"], maxUses: 1 } }, principals: {} } }, "policy.roles.r.maxUses: policy grants name domains only"],
    [{ ...base, policy: { roles: {}, principals: { alice: { roles: ["nope"] } } } }, 'policy.principals.alice.roles.0: names role "nope"'],
    [{ ...base, tools: { files: {} } }, "tools.files.root"],
    [{ ...base, tools: { mail: {} } }, 'Unrecognized key: "mail"'],
    [{ ...base, upstreams: [{ name: "bad name", command: "x", tools: {} }] }, "upstreams.0"],
    [{ ...base, upstreams: [{ name: "u", url: "ftp://x", tools: {} }] }, "upstreams.0"],
    [{ ...base, upstreams: [{ name: "u", command: "x", tools: { t: { path: "fs.exec" } } }] }, "upstreams.0"],
    [{ ...base, upstreams: [{ name: "u", command: "x", urlHosts: "literal", tools: {} }] }, "upstreams.0.urlHosts"],
    [
      {
        ...base,
        upstreams: [
          { name: "u", command: "x", tools: {} },
          { name: "u", command: "y", tools: {} },
        ],
      },
      "upstreams.1.name: another upstream is already named u",
    ],
  ])("names the bad field: %j", (value, expected) => {
    expect(problems(value)).toContain(expected);
  });

  it("fills defaults for the request limits not given", () => {
    expect(parseGatewayConfig({ ...base, listen: { limits: { maxBodyBytes: 1 } } }, "/srv").listen.limits).toEqual({ ...DEFAULT_HTTP_LIMITS, maxBodyBytes: 1 });
    expect(DEFAULT_HTTP_LIMITS).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, maxHeaderBytes: 16_384, maxBodyBytes: 4_194_304, keepAliveTimeoutMs: 65_000 });
    expect(DEFAULT_BACKLOG).toBe(4096);
  });

  it("fills defaults for the session limits not given", () => {
    expect(parseGatewayConfig(base, "/srv").sessions).toEqual(DEFAULT_SESSION_LIMITS);
    expect(parseGatewayConfig({ ...base, sessions: { maxPerToken: 3 } }, "/srv").sessions).toEqual({ ...DEFAULT_SESSION_LIMITS, maxPerToken: 3 });
  });

  it("fills defaults for an identity provider: sub names the principal, asymmetric algorithms only, no leeway, no token type required", () => {
    expect(parseGatewayConfig({ ...base, oauth: { issuer: "https://idp.example" } }, "/srv").oauth).toEqual({
      issuer: "https://idp.example",
      scopes: [],
      algorithms: ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"],
      clockToleranceSeconds: 0,
      tokenTypes: null,
      claims: { principal: "sub" },
    });
    expect(parseGatewayConfig({ ...base, oauth: { issuer: "https://idp.example", tokenTypes: ["application/AT+JWT", "jwt"] } }, "/srv").oauth?.tokenTypes).toEqual(["at+jwt", "jwt"]);
    expect(parseGatewayConfig(base, "/srv").oauth).toBeUndefined();
  });

  it("lists every bad field at once", () => {
    const message = problems({ ...base, issuer: 3, listen: { host: "" }, tokenStore: {} });
    expect(message).toContain("issuer");
    expect(message).toContain("listen.host");
    expect(message).toContain("tokenStore");
  });

  it("reads a Postgres URL from the environment, and says which variable is missing", () => {
    const pg = { ...base, tokenStore: { kind: "postgres", urlFromEnv: "DB_URL", schema: "gw" } };
    expect(parseGatewayConfig(pg, "/", { DB_URL: "postgres://h/db" }).tokenStore).toEqual({ kind: "postgres", url: "postgres://h/db", schema: "gw" });
    expect(problems(pg)).toContain("tokenStore: a postgres store needs a connection string; set the environment variable DB_URL");
  });

  it("refuses unreadable files and bad JSON with the file's name", async () => {
    const f = makeFixture();
    try {
      await expect(loadGatewayConfig(path.join(f.dir, "missing.json"))).rejects.toThrow(/cannot read gateway config .*missing\.json/);
      writeFileSync(path.join(f.dir, "bad.json"), "{ nope");
      await expect(loadGatewayConfig(path.join(f.dir, "bad.json"))).rejects.toThrow(/bad\.json is not valid JSON/);
      // Bounded: a file past MAX_CONFIG_BYTES, a device that never ends, a directory.
      writeFileSync(path.join(f.dir, "huge.json"), " ".repeat(MAX_CONFIG_BYTES + 1));
      await expect(loadGatewayConfig(path.join(f.dir, "huge.json"))).rejects.toThrow(new RegExp(`huge\\.json" is larger than ${MAX_CONFIG_BYTES} bytes`));
      await expect(loadGatewayConfig("/dev/zero")).rejects.toThrow(/"\/dev\/zero" is larger than/);
      await expect(loadGatewayConfig(f.dir)).rejects.toThrow(InvalidInput);
      writeFileSync(path.join(f.dir, "agentcap.config.ts"), `export default ${JSON.stringify({ ...base, issuer: "from-ts" })};\n`);
      expect((await loadGatewayConfig(path.join(f.dir, "agentcap.config.ts"))).issuer).toBe("from-ts");
    } finally {
      f.cleanup();
    }
  });

  it("refuses a missing key file unless asked to create it, and a missing database", async () => {
    const f = makeFixture({ keys: { file: "nokeys.json" } });
    try {
      await expect(openGateway(await loadGatewayConfig(f.configFile))).rejects.toThrow(/nokeys\.json does not exist; create it with `agentcap token keygen/);
      writeFileSync(f.configFile, JSON.stringify({ ...f.config, keys: { file: "nokeys.json", createIfMissing: true }, tools: { database: { sqlite: "none.db", schema: {} } } }));
      await expect(openGateway(await loadGatewayConfig(f.configFile))).rejects.toThrow(/tools\.database\.sqlite: database file .*none\.db does not exist/);
    } finally {
      f.cleanup();
    }
  });
});

describe("configured policy", () => {
  const policy = parseGatewayConfig(
    {
      ...base,
      policy: {
        roles: {
          a: { tools: ["x"], db: [{ model: "Customer", ops: ["read"], scope: { tenantId: "${tenant}" } }] },
          b: { tools: ["x", "y"], fs: [{ path: "/srv", ops: ["read"] }] },
        },
        principals: { alice: { tenants: ["acme", "globex"], roles: ["a", "b"] }, nobody: {} },
      },
    },
    "/",
  ).policy;
  const mint = configuredPolicy(policy);

  it("unions the roles' grants and stands the tenant placeholder for each tenant", () => {
    expect(mint({ id: "alice", tenants: ["acme", "globex"], roles: [] })).toEqual({
      tools: ["x", "y"],
      fs: [{ path: "/srv", ops: ["read"] }],
      http: [],
      exec: [],
      db: [
        { model: "Customer", ops: ["read"], scope: { tenantId: "acme" } },
        { model: "Customer", ops: ["read"], scope: { tenantId: "globex" } },
      ],
      tenants: ["acme", "globex"],
    });
  });

  it("grants nothing to unknown principals, and an empty grant to one without roles", () => {
    expect(mint({ id: "mallory", tenants: [], roles: [] })).toBeNull();
    expect(mint({ id: "__proto__", tenants: [], roles: [] })).toBeNull();
    expect(mint({ id: "nobody", tenants: [], roles: [] })).toEqual({ tools: [], fs: [], http: [], exec: [], db: [] });
  });
});

describe("relative paths in policy grants", () => {
  it("resolves fs paths of role and principal grants against the configuration's folder", () => {
    const c = parseGatewayConfig(
      {
        ...base,
        policy: {
          roles: { r: { fs: [{ path: "workspace/docs", ops: ["read"] }, { path: "/abs", ops: ["read"] }] } },
          principals: { alice: { roles: ["r"], grant: { fs: [{ path: "../shared", ops: ["list"] }] } } },
        },
      },
      "/srv/gw",
    );
    expect(c.policy.roles.r?.fs?.map((r) => r.path)).toEqual(["/srv/gw/workspace/docs", "/abs"]);
    expect(c.policy.principals.alice?.grant?.fs?.[0]?.path).toBe("/srv/shared");
  });
});

describe("audit store options", () => {
  it("passes a SQLite audit log's synchronous mode through, and refuses one it does not know", () => {
    expect(parseGatewayConfig({ ...base, audit: { kind: "sqlite", path: "a.db", synchronous: "normal" } }, "/srv").audit).toEqual({ kind: "sqlite", path: "/srv/a.db", synchronous: "normal" });
    expect(problems({ ...base, audit: { kind: "sqlite", path: "a.db", synchronous: "off" } })).toContain("audit");
    expect(problems({ ...base, tokenStore: { kind: "sqlite", path: "t.db", synchronous: "normal" } })).toContain("tokenStore");
  });
});
