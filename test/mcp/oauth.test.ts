import { ClientCredentialsProvider } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { createPrivateKey, sign, type JsonWebKey } from "node:crypto";
import { importJWK, SignJWT, type JWK, type JWTHeaderParameters } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMint } from "../../src/kernel/mint.ts";
import { loadGatewayConfig, mediaSubtype, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { CLIENTS, SCOPE, signingKeys, startIdentityProvider, type IdentityProvider } from "./idp.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * The gateway as an OAuth 2.1 resource server in front of a real
 * authorization server (oidc-provider on 127.0.0.1): MCP clients that do
 * OAuth find the provider through the protected resource metadata, and the
 * provider's access tokens open sessions whose capabilities the gateway's
 * own policy decides.
 */

let keys: JWK[];
let idp: IdentityProvider;
let impostor: IdentityProvider;
let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
const logged: string[] = [];

beforeAll(async () => {
  keys = await signingKeys();
  idp = await startIdentityProvider(keys);
  // The same signing key under another issuer name: its tokens verify, but are not the configured issuer's.
  impostor = await startIdentityProvider(keys);
  fixture = makeFixture({ oauth: { issuer: idp.issuer, scopes: [SCOPE], claims: { roles: "roles", tenants: "tenants" } } });
  const config = await loadGatewayConfig(fixture.configFile);
  const principals = { ...config.policy.principals, "ci-agent": { roles: ["reader"], tenants: [] }, short: { roles: ["reader"], tenants: [] } };
  gateway = await openGateway({ ...config, policy: { ...config.policy, principals } });
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: (line) => logged.push(line) });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  await Promise.all([idp.close(), impostor.close()]);
  fixture.cleanup();
});

const origin = () => new URL(http.url).origin;

/** An initialize with `token` as bearer, to the gateway at `url` (the one of this file by default): status, challenge and body. */
async function initialize(token: string, url = http.url): Promise<{ status: number; challenge: string; body: string }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } }),
  });
  return { status: res.status, challenge: res.headers.get("www-authenticate") ?? "", body: await res.text() };
}

describe("protected resource metadata (RFC 9728)", () => {
  it("names the resource and the configured authorization server, at the root and the path-suffixed location", async () => {
    for (const path of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
      const res = await fetch(`${origin()}${path}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        resource: http.url,
        authorization_servers: [idp.issuer],
        scopes_supported: [SCOPE],
        bearer_methods_supported: ["header"],
        resource_name: "agentcap gateway",
      });
    }
  });

  it("is what a 401 points to, with the scope a token needs", async () => {
    const res = await fetch(http.url, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="agentcap", resource_metadata="${origin()}/.well-known/oauth-protected-resource/mcp", scope="${SCOPE}"`);
  });
});

describe("access tokens from the identity provider", () => {
  it("open a session for a listed principal with exactly its configured roles", async () => {
    const { client } = await httpClient(http.url, await idp.token("ci-agent", http.url));
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["list_files", "read_file"]);
      expect(textOf(await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }))).toContain("hello from the workspace");
      const denied = (await client.callTool({ name: "read_file", arguments: { path: "private/secret.txt" } })) as CallToolResult;
      expect(denied.isError).toBe(true);
      const events = await gateway.audit.query({ principal: "ci-agent" });
      expect(events.length).toBeGreaterThan(0);
      // The gateway's own mint issued the root, for the principal the token names, under the session the gateway named.
      expect(events[0]?.event.subject.mint).toMatchObject({ principal: "ci-agent", issuer: "test-gateway", mintId: expect.stringMatching(/^mint:/) as unknown });
      expect(gateway.mints).toContain(events[0]?.event.subject.mint.mintId);
      expect(events[0]?.event.subject.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      await client.close();
    }
  });

  it("give an unlisted principal the roles its claims name that the policy defines, and nothing else", async () => {
    const { client } = await httpClient(http.url, await idp.token("contractor", http.url));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["list_files"]);
    } finally {
      await client.close();
    }
  });

  it("refuse a principal the policy grants nothing with 403", async () => {
    const r = await initialize(await idp.token("intruder", http.url));
    expect(r.status).toBe(403);
    expect(r.body).toContain("ERR_CAPABILITY_DENIED: this server grants the token's principal nothing");
  });

  it("refuse a token without the required scope with 403 insufficient_scope", async () => {
    const r = await initialize(await idp.token("ci-agent", http.url, ""));
    expect(r.status).toBe(403);
    expect(r.challenge).toContain('error="insufficient_scope"');
    expect(r.challenge).toContain(`scope="${SCOPE}"`);
    expect(r.challenge).toContain(`resource_metadata="${origin()}/.well-known/oauth-protected-resource/mcp"`);
  });

  const refusals: readonly (readonly [string, () => Promise<string>, string])[] = [
    [
      "a tampered token (its subject changed)",
      async () => {
        const [h, p, sig] = (await idp.token("contractor", http.url)).split(".") as [string, string, string];
        const claims = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
        return [h, Buffer.from(JSON.stringify({ ...claims, sub: "ci-agent" })).toString("base64url"), sig].join(".");
      },
      "the token is malformed or its signature does not verify",
    ],
    ["a token for another resource (audience)", () => idp.token("ci-agent", "http://127.0.0.2:9/mcp"), "the token was not issued for this server"],
    ["a token of another issuer signed with the same key", () => impostor.token("ci-agent", http.url), "the token was not issued for this server"],
    [
      "an expired token",
      async () => {
        const token = await idp.token("short", http.url);
        await new Promise((resolve) => setTimeout(resolve, 2100));
        return token;
      },
      "the token has expired",
    ],
    ["a JWT signed with no algorithm", () => Promise.resolve(`${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from(JSON.stringify({ iss: idp.issuer, sub: "ci-agent", aud: http.url, exp: 9e9, scope: SCOPE })).toString("base64url")}.x`), "the token is malformed or its signature does not verify"],
  ];

  it.each(refusals)("refuse %s with 401 invalid_token, saying only what kind of refusal", async (_name, make, description) => {
    const r = await initialize(await make());
    expect(r.status).toBe(401);
    expect(r.challenge).toContain('error="invalid_token"');
    expect(r.challenge).toContain(`error_description="${description}"`);
    expect(r.challenge).toContain(`resource_metadata="${origin()}/.well-known/oauth-protected-resource/mcp"`);
    expect(r.body).not.toMatch(/ERR_JW|claim|"iss"|"aud"|jose/);
  }, 15_000);

  it("end the session when the principal is revoked, and open none for it until reinstated", async () => {
    const token = await idp.token("ci-agent", http.url);
    const { client } = await httpClient(http.url, token);
    try {
      expect((await client.listTools()).tools.length).toBe(2);
      const admin = createMint({ issuer: "test-operator", policy: () => ({ revoke: [{ target: "principal" }] }), revocations: gateway.tokenStore }).issue({ id: "operator" });
      await gateway.tokenStore.revoke({ principal: "ci-agent" }, { reason: "key leaked", by: admin });
      await expect(client.listTools()).rejects.toThrow(/401|revoked|session not found/);
      expect((await initialize(token)).status).toBe(401);
      await gateway.tokenStore.reinstate({ principal: "ci-agent" });
      expect((await initialize(token)).status).toBe(200);
    } finally {
      await client.close();
    }
  });

  it("are refused by a gateway without oauth, and Biscuit tokens still work beside them", async () => {
    expect((await initialize(gateway.issueToken("alice"))).status).toBe(200);
    const plain = makeFixture();
    const g = await openGateway(await loadGatewayConfig(plain.configFile));
    const h = await listenHttp(g, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
    try {
      const r = await fetch(h.url, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${await idp.token("ci-agent", h.url)}` }, body: "{}" });
      expect(r.status).toBe(401);
      const meta = (await (await fetch(`${new URL(h.url).origin}/.well-known/oauth-protected-resource`)).json()) as Record<string, unknown>;
      expect(meta).not.toHaveProperty("authorization_servers");
    } finally {
      await h.close();
      await g.close();
      plain.cleanup();
    }
  });
});

describe("the official MCP SDK client doing OAuth", () => {
  it("finds the provider through the metadata, gets a client-credentials token and calls a tool", async () => {
    const authProvider = new ClientCredentialsProvider({ clientId: "ci-agent", clientSecret: CLIENTS["ci-agent"], scope: SCOPE, expectedIssuer: idp.issuer });
    const transport = new StreamableHTTPClientTransport(new URL(http.url), { authProvider });
    const client = new Client({ name: "oauth-client", version: "0.0.0" });
    await client.connect(transport);
    try {
      expect(authProvider.tokens()?.access_token).toMatch(/^ey/);
      expect(textOf(await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }))).toContain("hello from the workspace");
    } finally {
      await client.close();
    }
  });
});

describe("oauth.tokenTypes (RFC 9068's typ)", () => {
  /** A gateway of its own that requires at+jwt, with ci-agent a reader; `close` ends it and removes its files. */
  async function typedGateway(log: (line: string) => void): Promise<{ url: string; close: () => Promise<void> }> {
    const typed = makeFixture({ oauth: { issuer: idp.issuer, scopes: [SCOPE], tokenTypes: ["at+jwt"] } });
    const config = await loadGatewayConfig(typed.configFile);
    const g = await openGateway({ ...config, policy: { ...config.policy, principals: { ...config.policy.principals, "ci-agent": { roles: ["reader"], tenants: [] } } } });
    const h = await listenHttp(g, { host: "127.0.0.1", port: 0 }, { log });
    return {
      url: h.url,
      close: async () => {
        await h.close();
        await g.close();
        typed.cleanup();
      },
    };
  }

  /** A JWT the provider's key signed with `typ` in its header, claiming what an access token for `resource` would. */
  async function signed(typ: unknown, resource: string, extra: Record<string, unknown> = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: "ES256", kid: keys[0]?.kid ?? "", ...(typ === undefined ? {} : { typ }), ...extra } as JWTHeaderParameters;
    return new SignJWT({ sub: "ci-agent", scope: SCOPE, client_id: "ci-agent" })
      .setProtectedHeader(header)
      .setIssuer(idp.issuer)
      .setAudience(resource)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      // A critical header is signed as the provider would sign it; the verifying side decides whether it understands it.
      .sign(await importJWK(keys[0] as JWK, "ES256"), Array.isArray(extra.crit) ? { crit: Object.fromEntries(extra.crit.map((k) => [String(k), true])) } : undefined);
  }

  it("accepts only the listed types, with or without application/, in any case; a JWT of another type gets 401 saying so", async () => {
    const h = await typedGateway(() => undefined);
    const open = (token: string) => initialize(token, h.url);
    try {
      // oidc-provider's own access tokens say at+jwt.
      expect((await open(await idp.token("ci-agent", h.url))).status).toBe(200);
      expect((await open(await signed("application/AT+JWT", h.url))).status).toBe(200);
      for (const typ of ["JWT", "id_token+jwt", undefined]) {
        const r = await open(await signed(typ, h.url));
        expect(r.status, String(typ)).toBe(401);
        expect(r.challenge).toContain('error_description="the token is not an access token of a type this server accepts"');
      }
    } finally {
      await h.close();
    }
  });

  it("refuses, with the same 401 sentence and no crash, a signed typ that only looks like an accepted one", async () => {
    const lines: string[] = [];
    const h = await typedGateway((line) => lines.push(line));
    const open = (token: string) => initialize(token, h.url);
    const TYPED = 'error_description="the token is not an access token of a type this server accepts"';
    try {
      // Values a provider might sign that are not exactly at+jwt: other JSON types, padding, parameters, look-alike letters.
      const attacks: unknown[] = [
        ["at+jwt"],
        [["at+jwt"]],
        { type: "at+jwt" },
        { toString: "at+jwt" },
        1,
        true,
        null,
        "",
        " at+jwt",
        "at+jwt ",
        "at+jwt\t",
        "at+jwt\u0000",
        "application/at+jwt; charset=utf-8",
        "application/at+jwt;",
        "application/application/at+jwt",
        "applicationat+jwt",
        "application//at+jwt",
        "text/at+jwt",
        "at+jwt+jwt",
        "at%2Bjwt",
        "at jwt",
        "\u0430t+jwt", // Cyrillic a
        "at+\uFF4Awt", // fullwidth j
        "AT+JWT\u0307",
        "at\u200B+jwt",
      ];
      for (const typ of attacks) {
        const r = await open(await signed(typ, h.url));
        expect(r.status, JSON.stringify(typ)).toBe(401);
        expect(r.challenge, JSON.stringify(typ)).toContain(TYPED);
        // The client learns the fixed sentence, never the typ it sent back or what the server accepts.
        expect(r.body, JSON.stringify(typ)).not.toContain("oauth.tokenTypes");
        expect(r.challenge, JSON.stringify(typ)).not.toContain("oauth.tokenTypes");
      }
      // Header JSON written by hand with typ twice: what counts is what the JWT library read (the last), whichever comes first.
      const raw = (headerJson: string) => {
        const now = Math.floor(Date.now() / 1000);
        const b64 = (text: string) => Buffer.from(text).toString("base64url");
        const input = `${b64(headerJson)}.${b64(JSON.stringify({ sub: "ci-agent", scope: SCOPE, iss: idp.issuer, aud: h.url, iat: now, exp: now + 300 }))}`;
        const key = createPrivateKey({ key: keys[0] as JsonWebKey, format: "jwk" });
        return `${input}.${sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
      };
      const kid = JSON.stringify(keys[0]?.kid ?? "");
      const lastWins = await open(raw(`{"alg":"ES256","kid":${kid},"typ":"at+jwt","typ":"JWT"}`));
      expect(lastWins.status).toBe(401);
      expect(lastWins.challenge).toContain(TYPED);
      expect((await open(raw(`{"alg":"ES256","kid":${kid},"typ":"JWT","typ":"at+jwt"}`))).status).toBe(200);
      // A typ under another key's name, or with its name escaped, is read as JSON reads it.
      expect((await open(raw(`{"alg":"ES256","kid":${kid},"Typ":"at+jwt"}`))).status).toBe(401);
      expect((await open(raw(`{"alg":"ES256","kid":${kid},"\\u0074yp":"at+jwt"}`))).status).toBe(200);
      // A critical header the gateway does not understand is refused by the JWT library whatever the typ.
      const crit = await open(await signed("at+jwt", h.url, { crit: ["x-agentcap"], "x-agentcap": 1 }));
      expect(crit.status).toBe(401);
      expect(crit.challenge).toContain('error_description="the token is malformed or its signature does not verify"');
      expect(lines.some((l) => l.startsWith("500"))).toBe(false);
    } finally {
      await h.close();
    }
  });

  it("compares types as media types do: ASCII letters in any case, nothing that only Unicode case folding makes equal", () => {
    expect(mediaSubtype("Application/AT+JWT")).toBe("at+jwt");
    expect(mediaSubtype("token-introspection+jwt")).toBe("token-introspection+jwt");
    // U+212A KELVIN SIGN lower-cases to an ASCII k in JavaScript; a media type holds no such letter.
    expect(mediaSubtype("to\u212Aen-introspection+jwt")).not.toBe("token-introspection+jwt");
    // U+0130 lower-cases to i and a combining dot: no such prefix is application/.
    expect(mediaSubtype("appl\u0130cation/at+jwt")).not.toBe("at+jwt");
  });

  it("checks no type when not configured, as many providers sign every token as JWT", async () => {
    expect((await initialize(await signed("JWT", http.url))).status).toBe(200);
  });

  it("refuses a value that is not a media type, with the field named", () => {
    const base = { issuer: "t", keys: { file: "k.json" }, tokenStore: { kind: "sqlite", path: "t.db" }, audit: { kind: "sqlite", path: "a.db" }, policy: { roles: {}, principals: {} } };
    expect(() => parseGatewayConfig({ ...base, oauth: { issuer: "https://idp.example.com", tokenTypes: ["at jwt"] } }, "/tmp")).toThrow(/oauth\.tokenTypes\.0: must be a media type such as "at\+jwt"/);
    expect(() => parseGatewayConfig({ ...base, oauth: { issuer: "https://idp.example.com", tokenTypes: [] } }, "/tmp")).toThrow(/oauth\.tokenTypes/);
  });
});
