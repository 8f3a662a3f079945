import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { McpServer, type RegisteredTool } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { ToolListChangedNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import type { JWK } from "jose";
import { errors as oidcErrors } from "oidc-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createManualClock, type ManualClock } from "../../src/kernel/clock.ts";
import { TokenExchangeFailed } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { caretaker } from "../../src/kernel/internal.ts";
import { loadGatewayConfig, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { bearerOf, startExchangeProvider, type ExchangeProvider } from "./exchange-provider.ts";
import { signingKeys } from "./idp.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * Token exchange (RFC 8693) against a real authorization server nobody here
 * wrote: oidc-provider on 127.0.0.1 (exchange-provider.ts), whose
 * token-exchange grant issues only to the gateway's clients, only for a
 * subject token the provider issued for the gateway, and, by this test's
 * policy, only for the upstream and the origin below. The upstream MCP
 * server and the HTTP origin verify every bearer token with the provider's
 * keys and their own audience, so a call that reached them with the
 * caller's own token would be refused there. Every audit event, error and
 * result is searched for each token that took part.
 */

const GATEWAY_CLIENT = "agentcap-gateway";
const GATEWAY_SECRET = "gateway-exchange-secret-5b0e7c1d";
/** The gateway's client that proves itself with a JWT signed by its private key (private_key_jwt), whose public key the provider holds. */
const GATEWAY_KEY_CLIENT = "agentcap-gateway-keyed";
const GATEWAY_KEY_ID = "gateway-key-1";
const gatewayKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
/** The gateway's resource URI: what the callers' own tokens are issued for. */
const RESOURCE = "https://gateway.test/mcp";
/** What the provider says when its policy refuses, which must reach no one. */
const REFUSAL_WORDS = "policy-says-no-7d1c2e";
const USERS = { alice: "alice-secret-0123456789", bob: "bob-secret-0123456789", short: "short-secret-0123456789" } as const;
type User = keyof typeof USERS;

/** What the provider's exchange policy does now, and the exchanges it made. */
const idpPolicy = { refuse: false, ttlSeconds: 300 };
const exchanges: { readonly sub: string; readonly resource: string }[] = [];
/** Every token that took part: the callers' own and those issued in exchange. */
const tokensSeen = new Set<string>();

let keys: JWK[];
let issuer = "";
let idp: ExchangeProvider;
let upstreamServer: Server;
let upstreamUrl = "";
let origin = "";
/** What the upstream and the origin saw: the verified subject and the token's audience per request, or a refusal. */
const upstreamSeen: { readonly method: string; readonly sub: string | null; readonly aud: unknown; readonly token: string }[] = [];
const originSeen: { readonly sub: string; readonly aud: unknown }[] = [];
/** The upstream's `reset` tool in each MCP session of alice's, to take it away. */
const aliceResets: RegisteredTool[] = [];

/** The upstream: a stateful MCP server that serves only requests with a token issued for it, and offers `reset` to alice alone. */
async function startUpstream(): Promise<void> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const serve = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = chunks.length === 0 ? undefined : (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { method?: string });
    const who = await bearerOf(req, keys, issuer, upstreamUrl);
    upstreamSeen.push({ method: body?.method ?? req.method ?? "", sub: who?.sub ?? null, aud: who?.aud ?? null, token: who?.token ?? req.headers.authorization ?? "" });
    if (who === null) {
      res.writeHead(401, { "www-authenticate": 'Bearer error="invalid_token"' }).end();
      return;
    }
    const id = req.headers["mcp-session-id"];
    let transport = typeof id === "string" ? transports.get(id) : undefined;
    if (transport === undefined) {
      const mcp = new McpServer({ name: "api-upstream", version: "0.0.0" });
      mcp.registerTool("whoami", { description: "Says who the upstream's token names." }, () => ({ content: [{ type: "text", text: `you are ${who.sub}` }] }));
      if (who.sub === "alice") aliceResets.push(mcp.registerTool("reset", { description: "Resets the account (admins only)." }, () => ({ content: [{ type: "text", text: "reset" }] })));
      const fresh: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (sid) => {
          transports.set(sid, fresh);
        },
      });
      transport = fresh;
      await mcp.connect(fresh);
    }
    await transport.handleRequest(req, res, body);
  };
  upstreamServer = createServer((req, res) => {
    if (req.url === "/mcp") {
      serve(req, res).catch(() => res.destroy());
      return;
    }
    void bearerOf(req, keys, issuer, origin).then((who) => {
      if (who === null) {
        res.writeHead(401).end("no token for this origin");
        return;
      }
      originSeen.push({ sub: who.sub, aud: who.aud });
      res.end(`hello ${who.sub}`);
    });
  });
  upstreamServer.listen(0, "127.0.0.1");
  await once(upstreamServer, "listening");
  origin = `http://127.0.0.1:${(upstreamServer.address() as AddressInfo).port}`;
  upstreamUrl = `${origin}/mcp`;
}

/** A client-credentials access token of `user` for the gateway, remembered among the tokens that took part. */
async function userToken(user: User): Promise<string> {
  const token = await idp.userToken(user);
  tokensSeen.add(token);
  return token;
}

let fixture: Fixture;
let clock: ManualClock;
let gateway: Gateway;
const errors: unknown[] = [];
const results: unknown[] = [];

/** Calls `tool` as `cap`, keeping the result or error for the final search. */
async function call(cap: Awaited<ReturnType<Gateway["authenticate"]>>, tool: string, args: Record<string, unknown> = {}): Promise<unknown> {
  try {
    const result = await gateway.dispatcher.call(tool, args, cap);
    results.push(result);
    return result;
  } catch (e) {
    errors.push(e);
    throw e;
  }
}

const operator = () => createMint({ issuer: "test-operator", policy: () => ({ revoke: [{ target: "principal" }, { target: "session" }] }), revocations: gateway.tokenStore }).issue({ id: "operator" });

beforeAll(async () => {
  keys = await signingKeys();
  idp = await startExchangeProvider({
    keys,
    users: USERS,
    gatewayResource: RESOURCE,
    userScope: "mcp:tools",
    userTokenSeconds: (user) => (user === "short" ? 3 : 300),
    gateways: [
      { id: GATEWAY_CLIENT, secret: GATEWAY_SECRET },
      { id: GATEWAY_KEY_CLIENT, publicKey: { ...gatewayKey.publicKey.export({ format: "jwk" }), kid: GATEWAY_KEY_ID, alg: "ES256", use: "sig" } },
    ],
    // The provider's exchange policy: only for the upstream and the origin, naming the gateway as actor; refused on demand.
    policy: {
      resources: () => [upstreamUrl, origin],
      scope: "api",
      ttlSeconds: () => idpPolicy.ttlSeconds,
      act: true,
      before: (params) => {
        if (idpPolicy.refuse) throw new oidcErrors.InvalidGrant(`${REFUSAL_WORDS}: ${params.subject_token ?? ""}`);
      },
      made: ({ sub, resource, token }) => {
        exchanges.push({ sub, resource });
        tokensSeen.add(token);
      },
    },
  });
  issuer = idp.issuer;
  await startUpstream();
  fixture = makeFixture({
    oauth: {
      issuer,
      resource: RESOURCE,
      scopes: ["mcp:tools"],
      tokenExchange: { clientId: GATEWAY_CLIENT, clientSecretFile: "secrets/exchange.secret", refreshBeforeSeconds: 30, origins: { [origin]: {} } },
    },
    tools: { http: { timeoutMs: 5000 } },
    upstreams: [{ name: "api", url: upstreamUrl, credentials: "token-exchange", tools: { whoami: {}, reset: {} } }],
    policy: {
      roles: { caller: { tools: ["fetch_url", "api__whoami", "api__reset"], http: [{ origin, methods: ["GET"], allowPrivateNetwork: true }] } },
      principals: { alice: { roles: ["caller"] }, bob: { roles: ["caller"] }, short: { roles: ["caller"] } },
    },
  });
  mkdirSync(path.join(fixture.dir, "secrets"), { recursive: true });
  writeFileSync(path.join(fixture.dir, "secrets", "exchange.secret"), `${GATEWAY_SECRET}\n`);
  clock = createManualClock(Date.now());
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile), { clock });
});

afterAll(async () => {
  await gateway.close();
  upstreamServer.closeAllConnections();
  await Promise.all([new Promise((r) => upstreamServer.close(r)), idp.close()]);
  fixture.cleanup();
});

describe("token exchange for an upstream MCP server", () => {
  it("opens without asking the upstream anything: its tools are listed per caller, with that caller's exchanged token", () => {
    expect(upstreamSeen).toEqual([]);
    expect(exchanges).toEqual([]);
  });

  it("sends the upstream a token issued for it in exchange for the caller's, per principal; never the caller's own", async () => {
    const aliceToken = await userToken("alice");
    const alice = await gateway.authenticate(aliceToken, { fresh: true, resource: RESOURCE });
    expect(textOf(await call(alice, "api__whoami"))).toBe("you are alice");
    const bob = await gateway.authenticate(await userToken("bob"), { fresh: true, resource: RESOURCE });
    expect(textOf(await call(bob, "api__whoami"))).toBe("you are bob");
    // Every request the upstream got carried a token it verified, issued for it, naming the caller; none carried the caller's own.
    expect(upstreamSeen.length).toBeGreaterThan(0);
    expect(upstreamSeen.every((m) => m.sub !== null && m.aud === upstreamUrl)).toBe(true);
    expect(upstreamSeen.some((m) => m.token === aliceToken)).toBe(false);
    expect(new Set(upstreamSeen.map((m) => m.sub))).toEqual(new Set(["alice", "bob"]));
    // One exchange per session for all of its requests (initialize, listing, call).
    expect(exchanges).toEqual([
      { sub: "alice", resource: upstreamUrl },
      { sub: "bob", resource: upstreamUrl },
    ]);
    expect(gateway.tokenExchange()).toEqual({ subjects: 2, exchanged: 2 });
  });

  it("keeps an exchanged token for its session until shortly before it expires, then exchanges again; another session exchanges its own", async () => {
    const alice = await gateway.authenticate(await userToken("alice"), { fresh: true, resource: RESOURCE });
    exchanges.length = 0;
    await call(alice, "api__whoami");
    await call(alice, "api__whoami");
    expect(exchanges).toHaveLength(1);
    // 300 s tokens, renewed 30 s before they expire.
    clock.advance(269_000);
    await call(alice, "api__whoami");
    expect(exchanges).toHaveLength(1);
    clock.advance(2_000);
    expect(textOf(await call(alice, "api__whoami"))).toBe("you are alice");
    expect(exchanges).toHaveLength(2);
    const again = await gateway.authenticate(await userToken("alice"), { fresh: true, resource: RESOURCE });
    await call(again, "api__whoami");
    expect(exchanges).toHaveLength(3);
  });

  it("gives the fetch tool a token exchanged for the origin it fetches, and nothing for others", async () => {
    const bob = await gateway.authenticate(await userToken("bob"), { fresh: true, resource: RESOURCE });
    exchanges.length = 0;
    const result = await call(bob, "fetch_url", { url: `${origin}/items` });
    expect(JSON.stringify(result)).toContain("hello bob");
    expect(originSeen.at(-1)).toEqual({ sub: "bob", aud: origin });
    expect(exchanges).toEqual([{ sub: "bob", resource: origin }]);
  });

  it("refuses a session opened with a Biscuit token (TokenExchangeFailed: no-subject-token), sending the upstream nothing", async () => {
    const cap = await gateway.authenticate(gateway.issueToken("alice"), { fresh: true });
    upstreamSeen.length = 0;
    exchanges.length = 0;
    const error = await call(cap, "api__whoami").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenExchangeFailed);
    expect(error).toMatchObject({ code: "ERR_TOKEN_EXCHANGE_FAILED", reason: "no-subject-token" });
    expect((error as Error).message).toMatch(/upstream api takes a token the identity provider issues in exchange/);
    expect(upstreamSeen).toEqual([]);
    expect(exchanges).toEqual([]);
  });

  it("says the provider refused (TokenExchangeFailed: refused, with its error code), never what it said, and sends nothing", async () => {
    const bob = await gateway.authenticate(await userToken("bob"), { fresh: true, resource: RESOURCE });
    idpPolicy.refuse = true;
    upstreamSeen.length = 0;
    try {
      const error = await call(bob, "api__whoami").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenExchangeFailed);
      expect(error).toMatchObject({ reason: "refused", oauthError: "invalid_grant" });
      expect((error as Error).message).toBe("the identity provider refused to exchange the caller's token for upstream api (invalid_grant, HTTP 400)");
      expect(JSON.stringify(error, Object.getOwnPropertyNames(error))).not.toContain(REFUSAL_WORDS);
      expect((error as Error).cause).toBeUndefined();
      expect(upstreamSeen.filter((m) => m.sub === "bob")).toEqual([]);
    } finally {
      idpPolicy.refuse = false;
    }
    expect(textOf(await call(bob, "api__whoami"))).toBe("you are bob");
  });

  it("stops exchanging for a revoked principal, and drops what its sessions held as soon as the store learns of it", async () => {
    const alice = await gateway.authenticate(await userToken("alice"), { fresh: true, resource: RESOURCE });
    const bob = await gateway.authenticate(await userToken("bob"), { fresh: true, resource: RESOURCE });
    await call(alice, "api__whoami");
    await call(bob, "api__whoami");
    const before = gateway.tokenExchange();
    await gateway.tokenStore.revoke({ principal: "alice" }, { reason: "left", by: operator() });
    // Without any further call: every session of alice's forgot its access token and what was exchanged for it.
    const after = gateway.tokenExchange();
    expect(after?.subjects).toBeLessThan(before?.subjects ?? 0);
    exchanges.length = 0;
    upstreamSeen.length = 0;
    const error = await call(alice, "api__whoami").catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "ERR_REVOKED" });
    expect(exchanges).toEqual([]);
    expect(upstreamSeen).toEqual([]);
    // Bob's sessions keep theirs.
    expect(textOf(await call(bob, "api__whoami"))).toBe("you are bob");
    expect(exchanges).toEqual([]);
    await gateway.tokenStore.reinstate({ principal: "alice" });
  });

  it("drops a session's tokens when that session is revoked, and exchanges nothing for it after", async () => {
    const root = await gateway.authenticate(await userToken("bob"), { fresh: true, resource: RESOURCE });
    const id = randomUUID();
    const session = caretaker(root, { session: id }).capability;
    await call(session, "api__whoami");
    const before = gateway.tokenExchange()?.subjects ?? 0;
    await gateway.tokenStore.revoke({ session: id }, { reason: "done", by: operator() });
    expect(gateway.tokenExchange()?.subjects).toBe(before - 1);
    exchanges.length = 0;
    expect(await call(session, "api__whoami").catch((e: unknown) => e)).toMatchObject({ code: "ERR_REVOKED" });
    expect(exchanges).toEqual([]);
  });

  it("exchanges nothing once the caller's own token has expired", async () => {
    const token = await userToken("short");
    const short = await gateway.authenticate(token, { fresh: true, resource: RESOURCE });
    // Until a moment past the token's own exp (whole seconds, so up to three of them).
    const { exp } = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString()) as { exp: number };
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, exp * 1000 - Date.now()) + 100));
    exchanges.length = 0;
    expect(await call(short, "api__whoami").catch((e: unknown) => e)).toMatchObject({ code: "ERR_EXPIRED" });
    expect(exchanges).toEqual([]);
  });
});

describe("tool listing of an upstream that takes each caller's credential", () => {
  it("lists per caller over MCP: alice is shown what the upstream offers her, bob only what it offers him; a change reaches only alice's session", async () => {
    const http: HttpGateway = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
    const a = await httpClient(http.url, await userToken("alice"));
    const b = await httpClient(http.url, await userToken("bob"));
    try {
      const names = async (c: typeof a) => (await c.client.listTools()).tools.map((t) => t.name).sort();
      expect(await names(a)).toEqual(["api__reset", "api__whoami", "fetch_url"]);
      expect(await names(b)).toEqual(["api__whoami", "fetch_url"]);
      const whoami = (await a.client.listTools()).tools.find((t) => t.name === "api__whoami");
      expect(whoami?.description).toBe("Says who the upstream's token names. (via agentcap from upstream api)");
      // Bob is not offered reset by the upstream, so the gateway refuses his call before sending it.
      const refused = await b.client.callTool({ name: "api__reset", arguments: {} });
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toMatch(/ERR_INVALID_INPUT: upstream api does not offer this caller tool reset/);
      let aliceTold = 0;
      let bobTold = 0;
      const aliceNotified = new Promise<void>((resolve) => {
        a.client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
          aliceTold += 1;
          resolve();
        });
      });
      b.client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        bobTold += 1;
      });
      // The upstream takes reset away from alice, and tells her connection.
      for (const reset of aliceResets) reset.disable();
      await aliceNotified;
      expect(await names(a)).toEqual(["api__whoami", "fetch_url"]);
      expect(await names(b)).toEqual(["api__whoami", "fetch_url"]);
      expect(aliceTold).toBe(1);
      expect(bobTold).toBe(0);
    } finally {
      await a.client.close();
      await b.client.close();
      await http.close();
    }
  });
});

describe("a gateway that signs its token requests with its private key (private_key_jwt)", () => {
  /** A gateway like the main one, authenticating at the token endpoint with `key` in a PEM file, under the keyed client. */
  const keyedGateway = async (key: string, keyId?: string) => {
    const keyed = makeFixture({
      oauth: {
        issuer,
        resource: RESOURCE,
        scopes: ["mcp:tools"],
        tokenExchange: { clientId: GATEWAY_KEY_CLIENT, clientAuth: "private_key_jwt", clientKeyFile: "secrets/exchange-key.pem", ...(keyId === undefined ? {} : { clientKeyId: keyId }) },
      },
      upstreams: [{ name: "api", url: upstreamUrl, credentials: "token-exchange", tools: { whoami: {} } }],
      policy: { roles: { caller: { tools: ["api__whoami"] } }, principals: { alice: { roles: ["caller"] } } },
    });
    mkdirSync(path.join(keyed.dir, "secrets"), { recursive: true });
    writeFileSync(path.join(keyed.dir, "secrets", "exchange-key.pem"), key);
    return { keyed, gateway: await openGateway(await loadGatewayConfig(keyed.configFile)) };
  };

  it("exchanges the caller's token with no client secret anywhere: the provider checks the assertion against the key it holds", async () => {
    const { keyed, gateway: g } = await keyedGateway(gatewayKey.privateKey.export({ format: "pem", type: "pkcs8" }).toString(), GATEWAY_KEY_ID);
    try {
      exchanges.length = 0;
      const alice = await g.authenticate(await userToken("alice"), { fresh: true, resource: RESOURCE });
      expect(textOf(await g.dispatcher.call("api__whoami", {}, alice))).toBe("you are alice");
      expect(exchanges).toEqual([{ sub: "alice", resource: upstreamUrl }]);
    } finally {
      await g.close();
      keyed.cleanup();
    }
  });

  it("is refused by the provider when it signs with a key the provider does not hold (TokenExchangeFailed: refused, invalid_client), and sends the upstream nothing", async () => {
    const stranger = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const { keyed, gateway: g } = await keyedGateway(stranger, GATEWAY_KEY_ID);
    try {
      upstreamSeen.length = 0;
      const alice = await g.authenticate(await userToken("alice"), { fresh: true, resource: RESOURCE });
      const error = await g.dispatcher.call("api__whoami", {}, alice).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenExchangeFailed);
      expect(error).toMatchObject({ reason: "refused", oauthError: "invalid_client" });
      expect(upstreamSeen).toEqual([]);
    } finally {
      await g.close();
      keyed.cleanup();
    }
  });

  it.each([
    ["no key at all", "not a key\n", /the token exchange client key file .*exchange-key\.pem holds no private key/],
    ["a public key", gatewayKey.publicKey.export({ format: "pem", type: "spki" }).toString(), /holds no private key/],
    ["a P-384 key", generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey.export({ format: "pem", type: "pkcs8" }).toString(), /is not an RSA, P-256 or Ed25519 key/],
  ])("does not open with %s in its key file (InvalidInput), and the error holds none of the file", async (_what, content, message) => {
    const error = await keyedGateway(content).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("BEGIN");
  });
});

describe("a session's tokens end with the session", () => {
  it("forgets the access token and what was exchanged for it when its client ends the session, or the gateway refuses to open one", async () => {
    const http: HttpGateway = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
    try {
      const before = gateway.tokenExchange();
      const a = await httpClient(http.url, await userToken("alice"));
      expect(textOf(await a.client.callTool({ name: "api__whoami", arguments: {} }))).toBe("you are alice");
      expect(gateway.tokenExchange()).toEqual({ subjects: (before?.subjects ?? 0) + 1, exchanged: (before?.exchanged ?? 0) + 1 });
      await a.transport.terminateSession();
      await a.client.close();
      expect(gateway.tokenExchange()).toEqual(before);
      // A request that authenticates but is refused before a session exists (a body that is not JSON) keeps nothing either.
      const refused = await fetch(http.url, {
        method: "POST",
        headers: { authorization: `Bearer ${await userToken("alice")}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
        body: "{not json",
      });
      expect(refused.status).toBe(400);
      expect(gateway.tokenExchange()).toEqual(before);
    } finally {
      await http.close();
    }
  });

  it("a token authenticated outside a new session (an explorer or a mismatched request) is not kept", async () => {
    const before = gateway.tokenExchange();
    await gateway.authenticate(await userToken("bob"), { resource: RESOURCE });
    expect(gateway.tokenExchange()).toEqual(before);
  });
});

describe("what never holds a token", () => {
  it("no audit event, error or tool result holds a caller's token or one exchanged for it", async () => {
    expect(tokensSeen.size).toBeGreaterThan(4);
    const events = await gateway.audit.query({});
    expect(events.length).toBeGreaterThan(0);
    const shown = [
      JSON.stringify(events),
      ...errors.map((e) => JSON.stringify(e, Object.getOwnPropertyNames(e)) + String((e as Error).stack)),
      ...results.map((r) => JSON.stringify(r)),
      ...["audit.db", "audit.db-wal"].map((f) => path.join(fixture.dir, "state", f)).filter((f) => existsSync(f)).map((f) => readFileSync(f, "latin1")),
    ].join("\n");
    for (const token of tokensSeen) {
      expect(shown).not.toContain(token);
      // Nor its signature alone.
      expect(shown).not.toContain(token.split(".")[2]);
    }
  });
});

describe("the token exchange section of a gateway configuration", () => {
  const base = { issuer: "t", keys: { file: "k.json" }, tokenStore: { kind: "sqlite", path: "t.db" }, audit: { kind: "sqlite", path: "a.db" }, policy: { roles: {}, principals: {} } };
  const oauth = (tokenExchange: unknown, issuerUrl = "https://idp.example.com") => ({ ...base, oauth: { issuer: issuerUrl, tokenExchange } });
  it.each([
    ["a secret in the configuration", oauth({ clientId: "g", clientSecret: "s3cret" }), /oauth\.tokenExchange: Unrecognized key: "clientSecret"/],
    ["no secret", oauth({ clientId: "g" }), /clientSecretFile or clientSecretFromEnv, exactly one/],
    ["both secrets", oauth({ clientId: "g", clientSecretFile: "s", clientSecretFromEnv: "S" }), /clientSecretFile or clientSecretFromEnv, exactly one/],
    ["no client id", oauth({ clientSecretFile: "s" }), /oauth\.tokenExchange\.clientId/],
    ["a plain-http provider elsewhere", oauth({ clientId: "g", clientSecretFile: "s" }, "http://idp.example.com"), /oauth\.issuer: must be https for a token exchange/],
    ["a plain-http token endpoint elsewhere", oauth({ clientId: "g", clientSecretFile: "s", tokenEndpoint: "http://idp.example.com/token" }), /oauth\.tokenExchange\.tokenEndpoint: must be https/],
    ["an origin with a path", oauth({ clientId: "g", clientSecretFile: "s", origins: { "https://api.example.com/v1": {} } }), /oauth\.tokenExchange\.origins\.https:\/\/api\.example\.com\/v1: /],
    ["a resource that is not a URI", oauth({ clientId: "g", clientSecretFile: "s", origins: { "https://api.example.com": { resource: "api" } } }), /resource: must be an absolute URI/],
    ["private_key_jwt without a key file", oauth({ clientId: "g", clientAuth: "private_key_jwt" }), /oauth\.tokenExchange\.clientKeyFile: private_key_jwt signs with the gateway's private key/],
    ["private_key_jwt with a secret too", oauth({ clientId: "g", clientAuth: "private_key_jwt", clientKeyFile: "k.pem", clientSecretFile: "s" }), /oauth\.tokenExchange\.clientSecretFile: private_key_jwt sends no client secret/],
    ["a client key with a secret method", oauth({ clientId: "g", clientSecretFile: "s", clientKeyFile: "k.pem" }), /oauth\.tokenExchange\.clientKeyFile: a client key applies only to clientAuth "private_key_jwt"/],
    ["a refresh margin beyond an hour", oauth({ clientId: "g", clientSecretFile: "s", refreshBeforeSeconds: 7200 }), /refreshBeforeSeconds: must be a whole number of seconds from 0 to 3600/],
    [
      "an exchanging upstream without tokenExchange",
      { ...base, upstreams: [{ name: "api", url: "https://api.example.com/mcp", credentials: "token-exchange", tools: {} }] },
      /upstreams\.0\.credentials: needs oauth\.tokenExchange/,
    ],
    [
      "exchange settings on an upstream that does not exchange",
      { ...base, upstreams: [{ name: "api", url: "https://api.example.com/mcp", exchange: { audience: "api" }, tools: {} }] },
      /upstreams\.0\.exchange: applies only to an upstream with credentials "token-exchange"/,
    ],
  ])("refuses %s", (_what, config, message) => {
    expect(() => parseGatewayConfig(config, "/etc/agentcap")).toThrow(message);
  });

  it("takes defaults, resolves the secret file, and asks for each origin as its resource unless told otherwise", () => {
    const parsed = parseGatewayConfig(
      oauth({ clientId: "g", clientSecretFile: "secrets/x", origins: { "https://api.example.com": {}, "https://b.example.com": { audience: "b", scopes: ["read"] } } }),
      "/etc/agentcap",
    );
    expect(parsed.oauth?.tokenExchange).toEqual({
      clientId: "g",
      clientSecret: { file: "/etc/agentcap/secrets/x" },
      clientAuth: "client_secret_basic",
      refreshBeforeSeconds: 30,
      timeoutSeconds: 10,
      origins: { "https://api.example.com": { resource: "https://api.example.com" }, "https://b.example.com": { audience: "b", scopes: ["read"] } },
    });
  });

  it("resolves a private_key_jwt key file, with the key id its assertions name", () => {
    const parsed = parseGatewayConfig(oauth({ clientId: "g", clientAuth: "private_key_jwt", clientKeyFile: "secrets/k.pem", clientKeyId: "k1" }), "/etc/agentcap");
    expect(parsed.oauth?.tokenExchange).toMatchObject({ clientAuth: "private_key_jwt", clientKey: { file: "/etc/agentcap/secrets/k.pem", keyId: "k1" } });
    expect(parsed.oauth?.tokenExchange?.clientSecret).toBeUndefined();
  });

  it("a gateway whose client secret is not where the configuration says does not open (InvalidInput naming the place)", async () => {
    const config = await loadGatewayConfig(fixture.configFile);
    const te = config.oauth?.tokenExchange;
    if (te === undefined) throw new Error("no token exchange");
    const missing = { ...config, oauth: { ...config.oauth, issuer, tokenExchange: { ...te, clientSecret: { fromEnv: "AGENTCAP_TEST_NO_SUCH_SECRET" } } } } as typeof config;
    await expect(openGateway(missing)).rejects.toThrow(/the environment variable AGENTCAP_TEST_NO_SUCH_SECRET \(oauth\.tokenExchange\.clientSecretFromEnv\) is not set/);
  });
});
