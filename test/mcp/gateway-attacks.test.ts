import { once } from "node:events";
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK, type JWTPayload } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { bearerOf, startExchangeProvider, type ExchangeProvider } from "./exchange-provider.ts";
import { signingKeys } from "./idp.ts";
import { makeFixture, type Fixture } from "./support.ts";

/*
 * An attacker's table against the HTTP gateway in front of an identity
 * provider with token exchange: oidc-provider on 127.0.0.1 issues the
 * callers' access tokens and exchanges them (for the gateway's client only)
 * for tokens of one origin, which answers `hello <sub>` to a token issued
 * for it. Each row is one attempt, with the denial expected; after each, the
 * gateway must hold exactly one subject token per open session (what a
 * session keeps for its exchanges lives and dies with it), and the victims'
 * sessions must still work as themselves.
 */

const GATEWAY_CLIENT = "agentcap-gateway";
const GATEWAY_SECRET = "gateway-exchange-secret-9a41c3";
const RESOURCE = "https://gateway.test/mcp";
const USERS = { alice: "alice-secret-0123456789", bob: "bob-secret-0123456789" } as const;
type User = keyof typeof USERS;

let keys: JWK[];
let issuer = "";
let idp: ExchangeProvider;
let originServer: Server;
let origin = "";
/** The exchanges the provider made, by subject. */
const exchanges: string[] = [];
/** How long the provider takes to answer an exchange, and when it has started one (for a row that ends a session meanwhile). */
const exchangeDelay = { ms: 0, started: (): void => undefined };

/** Makes the provider take `ms` over each exchange from now on; resolves once one has started. `exchangesAtOnce` undoes it. */
function slowExchanges(ms: number): Promise<void> {
  exchangeDelay.ms = ms;
  return new Promise<void>((resolve) => {
    exchangeDelay.started = resolve;
  });
}

function exchangesAtOnce(): void {
  exchangeDelay.ms = 0;
  exchangeDelay.started = () => undefined;
}
/** The subjects the origin answered. */
const originSeen: string[] = [];
const logged: string[] = [];

/** The origin: answers `hello <sub>` to a bearer token the provider issued for it, 401 otherwise. */
async function startOrigin(): Promise<void> {
  originServer = createServer((req, res) => {
    void bearerOf(req, keys, issuer, origin).then((who) => {
      if (who === null) res.writeHead(401).end("no token for this origin");
      else {
        originSeen.push(who.sub);
        // A path other than /whoami is said back, so a test can tell two calls' answers apart.
        res.end(`hello ${who.sub}${req.url === "/whoami" ? "" : ` at ${req.url ?? ""}`}`);
      }
    });
  });
  originServer.listen(0, "127.0.0.1");
  await once(originServer, "listening");
  origin = `http://127.0.0.1:${(originServer.address() as AddressInfo).port}`;
}

/** A client-credentials access token of `user` for the gateway, as the provider issues it. */
function userToken(user: User): Promise<string> {
  return idp.userToken(user);
}

/** The key id signingKeys gives the provider's key. */
const KID = "test-key-1";

/** The claims of a good access token for alice, signed by the provider's own key. */
function goodClaims(): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return { iss: issuer, aud: RESOURCE, sub: "alice", scope: "mcp:tools", iat: now, exp: now + 300 };
}

/** A JWT signed with the provider's own key, with whatever claims an attacker (or a broken provider) chose. */
async function forged(claims: JWTPayload): Promise<string> {
  return new SignJWT({ ...goodClaims(), ...claims }).setProtectedHeader({ alg: "ES256", kid: KID, typ: "at+jwt" }).sign(await importJWK(keys[0] as JWK, "ES256"));
}

/** A good token for alice, signed by the provider's own key, without the claim `omit`. */
async function forgedWithout(omit: string): Promise<string> {
  const claims = Object.fromEntries(Object.entries(goodClaims()).filter(([k]) => k !== omit));
  return new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: KID }).sign(await importJWK(keys[0] as JWK, "ES256"));
}

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;

beforeAll(async () => {
  keys = await signingKeys();
  idp = await startExchangeProvider({
    keys,
    users: USERS,
    gatewayResource: RESOURCE,
    userScope: "mcp:tools",
    gateways: [{ id: GATEWAY_CLIENT, secret: GATEWAY_SECRET }],
    policy: {
      resources: () => [origin],
      scope: "mcp:tools",
      ttlSeconds: () => 300,
      act: false,
      before: async () => {
        exchangeDelay.started();
        if (exchangeDelay.ms > 0) await new Promise((resolve) => setTimeout(resolve, exchangeDelay.ms));
      },
      made: ({ sub }) => exchanges.push(sub),
    },
  });
  issuer = idp.issuer;
  await startOrigin();
  fixture = makeFixture({
    oauth: {
      issuer,
      resource: RESOURCE,
      scopes: ["mcp:tools"],
      claims: { roles: "roles" },
      tokenExchange: { clientId: GATEWAY_CLIENT, clientSecretFile: "secrets/exchange.secret", origins: { [origin]: {} } },
    },
    tools: { http: { timeoutMs: 5000 } },
    sessions: { maxPerToken: 3 },
    policy: {
      roles: {
        caller: { tools: ["fetch_url"], http: [{ origin, methods: ["GET"], allowPrivateNetwork: true }] },
        admin: { tools: ["fetch_url"], http: [{ origin, methods: ["GET", "POST", "DELETE"], allowPrivateNetwork: true }], revoke: [{ target: "principal" }] },
      },
      principals: { alice: { roles: ["caller"] }, bob: { roles: ["caller"] } },
    },
  });
  mkdirSync(path.join(fixture.dir, "secrets"), { recursive: true });
  writeFileSync(path.join(fixture.dir, "secrets", "exchange.secret"), `${GATEWAY_SECRET}\n`);
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: (line) => logged.push(line) });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  originServer.closeAllConnections();
  await Promise.all([new Promise((r) => originServer.close(r)), idp.close()]);
  fixture.cleanup();
});

/** What the gateway answered: status, the JSON-RPC message (from JSON or an event stream), and the session id it gave. */
interface Answer {
  readonly status: number;
  readonly message: { result?: unknown; error?: { message: string } } | null;
  readonly session: string | null;
  readonly challenge: string;
}

async function send(method: "POST" | "GET" | "DELETE", token: string | null, session: string | null, body?: unknown): Promise<Answer> {
  const res = await fetch(http.url, {
    method,
    headers: {
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...(session === null ? {} : { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    // An event stream that stays open (GET in a session) is not waited for.
    signal: AbortSignal.timeout(3000),
  });
  let text = "";
  if (res.headers.get("content-type")?.startsWith("text/event-stream") === true && method === "GET") await res.body?.cancel();
  else text = await res.text();
  const data = text.split("\n").find((l) => l.startsWith("data: "))?.slice(6) ?? text;
  let message: Answer["message"];
  try {
    message = JSON.parse(data) as Answer["message"];
  } catch {
    message = null;
  }
  return { status: res.status, message, session: res.headers.get("mcp-session-id"), challenge: res.headers.get("www-authenticate") ?? "" };
}

const INITIALIZE = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "attack", version: "0" } } };
const initialized = { jsonrpc: "2.0", method: "notifications/initialized" };
/** Each call an id of its own: of two requests under way in one session with the same id, the SDK's transport answers only the later. */
let nextId = 100;
const fetchCall = () => ({ jsonrpc: "2.0", id: nextId++, method: "tools/call", params: { name: "fetch_url", arguments: { url: `${origin}/whoami` } } });
const toolsList = { jsonrpc: "2.0", id: 3, method: "tools/list", params: {} };

/** A session of `token` that has made one call through the exchange: its id. */
async function openSession(token: string): Promise<string> {
  const opened = await send("POST", token, null, INITIALIZE);
  expect(opened.status).toBe(200);
  const id = opened.session as string;
  await send("POST", token, id, initialized);
  return id;
}

/** The text the fetch tool returned in session `id` (or the error it gave), as `token`. */
async function whoami(token: string, id: string): Promise<string> {
  const answer = await send("POST", token, id, fetchCall());
  if (answer.status !== 200) return `HTTP ${answer.status}`;
  return JSON.stringify(answer.message?.result ?? answer.message?.error ?? null);
}

/** Sessions the test opened and has not ended: token by session id. */
const open = new Map<string, string>();
async function session(token: string): Promise<string> {
  const id = await openSession(token);
  open.set(id, token);
  return id;
}
async function end(id: string): Promise<void> {
  const token = open.get(id) as string;
  open.delete(id);
  expect((await send("DELETE", token, id)).status).toBe(200);
}

/** What the gateway holds must be exactly one subject token per open session: nothing of an ended or never-opened session. */
function expectOneSubjectPerSession(): void {
  expect(gateway.tokenExchange()?.subjects).toBe(http.openSessions());
}

afterEach(async () => {
  for (const id of [...open.keys()]) await end(id);
  expect(http.openSessions()).toBe(0);
  expect(gateway.tokenExchange()).toEqual({ subjects: 0, exchanged: 0 });
});

describe("a caller with another principal's session id", () => {
  /** Bob's session with one exchange done, and alice's attempts at it. */
  type Attempt = readonly [string, (victim: string) => Promise<Answer>, number];
  const attempts: readonly Attempt[] = [
    ["calls a tool in it with no token", (v) => send("POST", null, v, fetchCall()), 401],
    ["calls a tool in it with a malformed Authorization header", async (v) => {
      const res = await fetch(http.url, { method: "POST", headers: { authorization: "Bearer a b", "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-session-id": v }, body: JSON.stringify(fetchCall()) });
      return { status: res.status, message: null, session: null, challenge: await res.text() };
    }, 401],
    ["calls a tool in it with her own valid access token", async (v) => send("POST", await userToken("alice"), v, fetchCall()), 403],
    ["calls a tool in it with her own Biscuit token", (v) => send("POST", gateway.issueToken("alice"), v, fetchCall()), 403],
    ["calls a tool in it with a Biscuit token for bob himself", (v) => send("POST", gateway.issueToken("bob"), v, fetchCall()), 403],
    ["calls a tool in it with another access token of bob's", async (v) => send("POST", await userToken("bob"), v, fetchCall()), 403],
    ["lists its tools with her own access token", async (v) => send("POST", await userToken("alice"), v, toolsList), 403],
    ["opens its event stream (GET) with her own access token", async (v) => send("GET", await userToken("alice"), v), 403],
    ["ends it (DELETE) with her own access token", async (v) => send("DELETE", await userToken("alice"), v), 403],
    ["ends it (DELETE) with no token", (v) => send("DELETE", null, v), 401],
    ["initializes it again with her own access token", async (v) => send("POST", await userToken("alice"), v, INITIALIZE), 403],
    ["calls a tool in it with a token for another audience", async (v) => send("POST", await forged({ sub: "bob", aud: "https://other.test/mcp" }), v, fetchCall()), 401],
    ["calls a tool in it with a token of another issuer", async (v) => send("POST", await forged({ sub: "bob", iss: "https://idp.evil.test" }), v, fetchCall()), 401],
    ["calls a tool in it with an expired token naming bob", async (v) => send("POST", await forged({ sub: "bob", exp: Math.floor(Date.now() / 1000) - 60 }), v, fetchCall()), 401],
  ];

  it.each(attempts)("alice %s: refused, and bob's session, subject token and exchanged token stay his", async (_what, attempt, status) => {
    const bobToken = await userToken("bob");
    const victim = await session(bobToken);
    expect(await whoami(bobToken, victim)).toContain("hello bob");
    const before = { exchanged: exchanges.length, held: gateway.tokenExchange() };
    const answer = await attempt(victim);
    expect(answer.status).toBe(status);
    expect(JSON.stringify(answer)).not.toContain("hello");
    // Nothing was exchanged for the attempt, nothing of it was kept, and nothing of bob's was dropped.
    expect(exchanges.length).toBe(before.exchanged);
    expect(gateway.tokenExchange()).toEqual(before.held);
    expectOneSubjectPerSession();
    expect(await whoami(bobToken, victim)).toContain("hello bob");
    expect(exchanges.length).toBe(before.exchanged);
  });
});

describe("identity-provider tokens that must open nothing", () => {
  type Attempt = readonly [string, () => Promise<string>, number, string];
  const attempts: readonly Attempt[] = [
    ["for another audience", () => forged({ aud: "https://other.test/mcp" }), 401, "the token was not issued for this server"],
    ["for several audiences, none of them this one", () => forged({ aud: ["https://a.test/mcp", "https://b.test/mcp"] }), 401, "the token was not issued for this server"],
    ["of another issuer, signed with the provider's key", () => forged({ iss: "https://idp.evil.test" }), 401, "the token was not issued for this server"],
    ["expired a minute ago", () => forged({ exp: Math.floor(Date.now() / 1000) - 60 }), 401, "the token has expired"],
    ["not valid before an hour from now", () => forged({ nbf: Math.floor(Date.now() / 1000) + 3600 }), 401, "the token is malformed or its signature does not verify"],
    ["without exp", () => forgedWithout("exp"), 401, "the token is malformed or its signature does not verify"],
    ["without sub", () => forgedWithout("sub"), 401, "the token is malformed or its signature does not verify"],
    ["with an empty sub", () => forged({ sub: "" }), 401, "the token is malformed or its signature does not verify"],
    ["with a sub that is a list", () => forged({ sub: ["alice"] as unknown as string }), 401, "the token is malformed or its signature does not verify"],
    ["with the header alg none", async () => `${Buffer.from('{"alg":"none"}').toString("base64url")}.${(await forged({})).split(".")[1] ?? ""}.`, 401, "the token is malformed or its signature does not verify"],
    [
      "signed with HS256 under the provider's public key as the secret",
      async () => {
        const { kty, crv, x, y } = keys[0] as JWK;
        return new SignJWT(goodClaims()).setProtectedHeader({ alg: "HS256", kid: KID }).sign(new TextEncoder().encode(JSON.stringify({ kty, crv, x, y, kid: KID })));
      },
      401,
      "the token is malformed or its signature does not verify",
    ],
    [
      "signed by the caller's own key, named in the header (jwk)",
      async () => {
        const own = await generateKeyPair("ES256", { extractable: true });
        return new SignJWT(goodClaims())
          .setProtectedHeader({ alg: "ES256", kid: KID, jwk: await exportJWK(own.publicKey) })
          .sign(own.privateKey);
      },
      401,
      "the token is malformed or its signature does not verify",
    ],
    ["without the required scope", () => forged({ scope: "openid" }), 403, ""],
    ["naming __proto__ as its principal", () => forged({ sub: "__proto__" }), 403, ""],
    ["naming constructor as its principal, claiming a role the policy does not define", () => forged({ sub: "constructor", roles: ["toString", "__proto__"] }), 403, ""],
  ];

  it.each(attempts)("a token %s is refused at initialize, and nothing of it is kept", async (_what, make, status, description) => {
    const answer = await send("POST", await make(), null, INITIALIZE);
    expect(answer.status).toBe(status);
    expect(answer.session).toBeNull();
    if (description !== "") expect(answer.challenge).toContain(`error_description="${description}"`);
    expect(http.openSessions()).toBe(0);
    expect(gateway.tokenExchange()).toEqual({ subjects: 0, exchanged: 0 });
  });

  it("a listed principal claiming a role it is not given gets exactly its configured roles: it may GET the origin, not POST to it", async () => {
    const token = await forged({ sub: "alice", roles: ["admin"] });
    const id = await session(token);
    const post = await send("POST", token, id, { jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "fetch_url", arguments: { url: `${origin}/x`, method: "POST" } } });
    expect(JSON.stringify(post.message)).toMatch(/ERR_/);
    expect(JSON.stringify(post.message)).not.toContain("hello");
    expect(await whoami(token, id)).toContain("hello alice");
  });
});

describe("requests that authenticate but open no session keep nothing", () => {
  const attempts: readonly (readonly [string, (token: string) => Promise<Answer>, number])[] = [
    ["GET without a session id", (t) => send("GET", t, null), 400],
    ["DELETE without a session id", (t) => send("DELETE", t, null), 400],
    ["tools/call without a session id", (t) => send("POST", t, null, fetchCall()), 400],
    ["a notification without a session id", (t) => send("POST", t, null, initialized), 400],
    ["two initializes in one batch", (t) => send("POST", t, null, [INITIALIZE, { ...INITIALIZE, id: 2 }]), 400],
    ["an initialize with an unknown session id", (t) => send("POST", t, "00000000-0000-4000-8000-000000000000", INITIALIZE), 404],
  ];

  it.each(attempts)("%s: refused, and the token is neither kept nor exchanged", async (_what, attempt, status) => {
    const before = exchanges.length;
    const answer = await attempt(await userToken("alice"));
    expect(answer.status).toBe(status);
    expect(http.openSessions()).toBe(0);
    expect(gateway.tokenExchange()).toEqual({ subjects: 0, exchanged: 0 });
    expect(exchanges.length).toBe(before);
  });

  it("the audit explorer authenticates an access token without keeping it", async () => {
    const res = await fetch(`${new URL(http.url).origin}/explore/api/events`, { headers: { authorization: `Bearer ${await userToken("alice")}` } });
    await res.text();
    expect(gateway.tokenExchange()).toEqual({ subjects: 0, exchanged: 0 });
  });
});

describe("opening, ending and reopening sessions", () => {
  it("ending one of two sessions of the same access token leaves the other its subject and exchanged token", async () => {
    const token = await userToken("alice");
    const [a, b] = [await session(token), await session(token)];
    expect(await whoami(token, a)).toContain("hello alice");
    expect(await whoami(token, b)).toContain("hello alice");
    const made = exchanges.length;
    expect(gateway.tokenExchange()).toEqual({ subjects: 2, exchanged: 2 });
    await end(a);
    expect(gateway.tokenExchange()).toEqual({ subjects: 1, exchanged: 1 });
    expect(await whoami(token, b)).toContain("hello alice");
    // b's exchanged token was kept: no new exchange.
    expect(exchanges.length).toBe(made);
    // a is gone for good: its id answers 404, even to its own token, and exchanges nothing.
    expect((await send("POST", token, a, fetchCall())).status).toBe(404);
    expect(exchanges.length).toBe(made);
  });

  it("alice ending her session never touches bob's; bob ending his never touches hers", async () => {
    const [at, bt] = [await userToken("alice"), await userToken("bob")];
    const [a, b] = [await session(at), await session(bt)];
    await Promise.all([whoami(at, a), whoami(bt, b)]);
    await end(a);
    expectOneSubjectPerSession();
    expect(await whoami(bt, b)).toContain("hello bob");
    const a2 = await session(at);
    await end(b);
    expect(await whoami(at, a2)).toContain("hello alice");
    expectOneSubjectPerSession();
  });

  it("a session reopened with the same token exchanges afresh; the ended one's exchanged token is not reused", async () => {
    const token = await userToken("alice");
    const a = await session(token);
    await whoami(token, a);
    await end(a);
    const made = exchanges.length;
    const again = await session(token);
    expect(again).not.toBe(a);
    expect(await whoami(token, again)).toContain("hello alice");
    expect(exchanges.length).toBe(made + 1);
  });

  it("a token's sessions past maxPerToken replace its own oldest idle one, whose tokens go with it; the others keep theirs", async () => {
    const token = await userToken("alice");
    const bobToken = await userToken("bob");
    const bob = await session(bobToken);
    await whoami(bobToken, bob);
    const ids = [await session(token), await session(token), await session(token)];
    for (const id of ids) await whoami(token, id);
    const fourth = await openSession(token);
    open.set(fourth, token);
    // The least recently used (the first) was replaced.
    open.delete(ids[0] as string);
    expect((await send("POST", token, ids[0] as string, fetchCall())).status).toBe(404);
    expectOneSubjectPerSession();
    const made = exchanges.length;
    for (const id of ids.slice(1)) expect(await whoami(token, id)).toContain("hello alice");
    expect(await whoami(bobToken, bob)).toContain("hello bob");
    expect(exchanges.length).toBe(made);
  });

  it("sessions of two principals opened, called and ended at once never mix: each call is answered as its own caller", async () => {
    const [at, bt] = [await userToken("alice"), await userToken("bob")];
    const sessions = await Promise.all([at, bt, at, bt, at, bt].map(async (t) => [t, await session(t)] as const));
    const seen = await Promise.all(sessions.flatMap(([t, id]) => [whoami(t, id), whoami(t, id)]));
    sessions.flatMap(([t]) => [t, t]).forEach((t, i) => {
      expect(seen[i]).toContain(t === at ? "hello alice" : "hello bob");
    });
    expectOneSubjectPerSession();
    // Half of them end while the others call.
    const ending = sessions.filter((_, i) => i % 2 === 0);
    const calling = sessions.filter((_, i) => i % 2 === 1);
    const [, answers] = await Promise.all([Promise.all(ending.map(([, id]) => end(id))), Promise.all(calling.map(([t, id]) => whoami(t, id)))]);
    calling.forEach(([t], i) => {
      expect(answers[i]).toContain(t === at ? "hello alice" : "hello bob");
    });
    expectOneSubjectPerSession();
  });

  it("forty initializes of one token at once end with at most maxPerToken sessions, each holding its own subject", async () => {
    const token = await userToken("bob");
    const answers = await Promise.all(Array.from({ length: 40 }, () => send("POST", token, null, INITIALIZE)));
    for (const a of answers) expect([200, 429]).toContain(a.status);
    expect(http.openSessions()).toBeLessThanOrEqual(3);
    expectOneSubjectPerSession();
    for (const a of answers) if (a.status === 200 && a.session !== null) await send("DELETE", token, a.session);
    expect(http.openSessions()).toBe(0);
  });

  it("a session ended while its call's token is being exchanged sends the origin nothing, and keeps nothing", async () => {
    const token = await userToken("alice");
    const id = await openSession(token);
    const started = slowExchanges(300);
    const seen = originSeen.length;
    try {
      const call = whoami(token, id);
      await started;
      expect((await send("DELETE", token, id)).status).toBe(200);
      // A DELETE closes the session's streams at once, the call's answer with them; the call itself goes on in the gateway.
      expect(await call).not.toContain("hello");
      // Past the exchange's end, and time enough for a request to the origin to have been made.
      await new Promise((resolve) => setTimeout(resolve, exchangeDelay.ms + 300));
    } finally {
      exchangesAtOnce();
    }
    expect(originSeen.length).toBe(seen);
    expect(gateway.tokenExchange()).toEqual({ subjects: 0, exchanged: 0 });
  });

  it("a request reusing the id of one still under way in its session is refused with 400, and the first is answered as itself", async () => {
    const token = await userToken("alice");
    const id = await session(token);
    const started = slowExchanges(300);
    const call = () => ({ ...fetchCall(), id: 4242 });
    try {
      const first = send("POST", token, id, call());
      await started;
      const again = await send("POST", token, id, call());
      expect(again.status).toBe(400);
      expect(again.message?.error?.message).toMatch(/a request with id 4242 is already under way in this session/);
      // The string "4242" is another id, and a batch naming one id twice is refused whole.
      expect((await send("POST", token, id, { ...toolsList, id: "4242" })).status).toBe(200);
      expect((await send("POST", token, id, [{ ...toolsList, id: 9 }, { ...toolsList, id: 9 }])).status).toBe(400);
      expect(JSON.stringify((await first).message?.result)).toContain("hello alice");
    } finally {
      exchangesAtOnce();
    }
    // Answered, its id is free again, and the session is not left busy: it ends at once.
    expect(JSON.stringify((await send("POST", token, id, call())).message?.result)).toContain("hello alice");
    await end(id);
  });

  it("a request reusing the id of one whose client went away is refused while that one still runs, so it never gets the first one's answer", async () => {
    const token = await userToken("alice");
    const id = await session(token);
    const started = slowExchanges(400);
    const gone = new AbortController();
    try {
      const first = fetch(http.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}`, "mcp-session-id": id, "mcp-protocol-version": "2025-06-18" },
        body: JSON.stringify({ ...fetchCall(), id: 5151 }),
        signal: gone.signal,
      }).catch(() => null);
      await started;
      gone.abort();
      await first;
      // Time for the gateway to see the connection close.
      await new Promise((resolve) => setTimeout(resolve, 50));
      // The first call still runs in the gateway. A second call under its id would be answered after it, with its answer: it is refused.
      const again = await send("POST", token, id, { ...fetchCall(), id: 5151, params: { name: "fetch_url", arguments: { url: `${origin}/whoami?second` } } });
      expect(again.status).toBe(400);
      expect(again.message?.error?.message).toMatch(/a request with id 5151 is already under way in this session/);
    } finally {
      exchangesAtOnce();
    }
    // Once the first is over, its id is free again, and a call under it gets its own answer.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const later = await send("POST", token, id, { ...fetchCall(), id: 5151, params: { name: "fetch_url", arguments: { url: `${origin}/whoami?later` } } });
    expect(JSON.stringify(later.message)).toContain("at /whoami?later");
    await end(id);
  });

  it("request ids of odd types, batches, notifications and responses: never a 500, nothing left claimed, the session still answers", async () => {
    const token = await userToken("alice");
    const id = await session(token);
    const raw = async (body: string) => {
      const res = await fetch(http.url, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}`, "mcp-session-id": id, "mcp-protocol-version": "2025-06-18" },
        body,
      });
      await res.text();
      return res.status;
    };
    const list = (idText: string) => `{"jsonrpc":"2.0","id":${idText},"method":"tools/list","params":{}}`;
    const bodies = [
      list("null"),
      list("1.5"),
      list("1e400"),
      list("-1e400"),
      list("-0"),
      list("{}"),
      list("[1]"),
      list("true"),
      list('""'),
      list("9007199254740993"),
      `[${list("61")},${list("62")}]`,
      `[${list("63")},${list('"63"')}]`,
      `[${list("64")},${list("64.0")}]`,
      `[${list("0")},${list("-0")}]`,
      "[]",
      '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":61}}',
      '{"jsonrpc":"2.0","id":61,"result":{}}',
      '{"jsonrpc":"2.0","id":61,"method":"tools/list","params":{},"result":{}}',
      '{"jsonrpc":"2.0","id":"__proto__","method":"tools/list","params":{}}',
    ];
    for (const body of bodies) {
      const status = await raw(body);
      expect(status, body).toBeLessThan(500);
    }
    const seen = logged.length;
    // Every id above is free again: each is answered as itself.
    for (const again of ["61", "62", "63", '"63"', "0", "64", '""', '"__proto__"']) {
      const answer = await send("POST", token, id, JSON.parse(list(again)) as unknown);
      expect(answer.status, again).toBe(200);
      expect(JSON.stringify(answer.message), again).toContain("fetch_url");
    }
    expect(logged.slice(seen).filter((l) => l.startsWith("500"))).toEqual([]);
    expect(logged.filter((l) => l.startsWith("500"))).toEqual([]);
    await end(id);
  });

  it("a session whose access token expires is closed, and its subject with it", async () => {
    const token = await forged({ sub: "bob", exp: Math.floor(Date.now() / 1000) + 2 });
    const id = await openSession(token);
    expect(await whoami(token, id)).toContain("hello bob");
    expect(gateway.tokenExchange()?.subjects).toBe(1);
    await vi.waitFor(() => {
      expect(http.openSessions()).toBe(0);
    }, { timeout: 5000 });
    expect(gateway.tokenExchange()).toEqual({ subjects: 0, exchanged: 0 });
    expect((await send("POST", token, id, fetchCall())).status).toBe(404);
  });
});
