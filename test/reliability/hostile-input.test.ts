import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitNotes } from "../../src/audit/checkpoint.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { generateCheckpointKey } from "../../src/audit/checkpoint.ts";
import { verifyCheckpoint, verifyProof } from "../../src/audit/proof-verifier.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { AgentcapError, parseConditions, parseGrant } from "../../src/kernel/index.ts";
import { loadGatewayConfig, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openPostgresTokenStore, parseHint } from "../../src/token/postgres-store.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { createTokenMint, readToken, toToken, verify } from "../../src/token/token.ts";
import { httpClient, makeFixture, rawExchange, type Fixture } from "../mcp/support.ts";
import { databaseUrl, describePostgres } from "../support/postgres.ts";
import { DEEP_TEXTS, hostileBytes, hostileJson, hostileValue, nastyText, prototypeUntouched, shallowValue } from "./arbitraries.ts";

/*
 * Every entry point that takes input from outside, fed hostile input with
 * fast-check (bounded runs): each input is accepted or refused with a typed
 * agentcap error carrying a message, or, over HTTP, answered with a 4xx
 * (never a 500, never a dropped process); nothing touches Object.prototype;
 * and the gateway keeps serving a well-behaved client afterwards.
 */

const RUNS = 60;
const HTTP_RUNS = 40;

/** `run` returns, or throws an AgentcapError with a message a person can read. */
async function typedOrAccepted(run: () => unknown): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (!(e instanceof AgentcapError)) throw new Error(`untyped error: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
    expect(e.message.trim().length).toBeGreaterThan(0);
  }
}

describe("parsers refuse hostile input with typed errors", () => {
  it("grants and link conditions", async () => {
    await fc.assert(
      fc.asyncProperty(hostileValue, async (value) => {
        await typedOrAccepted(() => parseGrant(value));
        await typedOrAccepted(() => parseConditions(value));
        await typedOrAccepted(() => parseGrant({ tools: ["a"], fs: [value], db: value }));
        expect(prototypeUntouched()).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it("gateway configurations, as values and as files of any bytes", async () => {
    const fixture = makeFixture();
    try {
      const file = path.join(fixture.dir, "hostile.json");
      await fc.assert(
        fc.asyncProperty(hostileValue, hostileBytes, async (value, bytes) => {
          await typedOrAccepted(() => parseGatewayConfig(value, fixture.dir, {}));
          await typedOrAccepted(() => parseGatewayConfig({ ...fixture.config, policy: value }, fixture.dir, {}));
          await typedOrAccepted(() => parseGatewayConfig({ ...fixture.config, listen: { limits: value } }, fixture.dir, {}));
          writeFileSync(file, bytes);
          await typedOrAccepted(() => loadGatewayConfig(file, {}));
          expect(prototypeUntouched()).toBe(true);
        }),
        { numRuns: RUNS },
      );
    } finally {
      fixture.cleanup();
    }
  });

  it("token bytes: random text, random bytes in base64, and real tokens cut short or with a byte changed", async () => {
    const store: TokenStore = openSqliteTokenStore(":memory:");
    const keys = generateKeyPair();
    const publicKeys = { 1: keys.publicKey };
    const mint = createTokenMint({ issuer: "fuzz", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store });
    const real = toToken(mint.issue({ id: "alice" }));
    const tokens = fc.oneof(
      nastyText,
      fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b).toString("base64url")),
      fc.nat({ max: real.length - 1 }).map((n) => real.slice(0, n)),
      fc.tuple(fc.nat({ max: real.length - 1 }), fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=\0 ".split(""))).map(([i, c]) => `${real.slice(0, i)}${c}${real.slice(i + 1)}`),
      fc.uint8Array({ maxLength: 64 }).map((b) => `${real}${Buffer.from(b).toString("base64url")}`),
    );
    try {
      await fc.assert(
        fc.asyncProperty(tokens, async (token) => {
          await typedOrAccepted(() => readToken(token, publicKeys));
          await typedOrAccepted(() => verify(token, { publicKeys, store }));
        }),
        { numRuns: 200 },
      );
    } finally {
      await store.close();
    }
  });

  it("Postgres notification payloads are hints at most: anything else is ignored", () => {
    fc.assert(
      fc.property(fc.oneof(nastyText, hostileJson), (payload) => {
        const hint = parseHint(payload);
        expect(hint === null || "revoke" in hint || typeof hint.usage.key === "string").toBe(true);
        expect(prototypeUntouched()).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  describe("audit exports and queries", () => {
    let audit: AuditStore;
    const key = generateCheckpointKey("fuzz.example/log");
    beforeAll(async () => {
      audit = await openAuditStore({ kind: "sqlite", path: ":memory:" });
    });
    afterAll(async () => {
      await audit.close();
    });

    it("proof bundles, checkpoint notes and checkpoint files get a verdict, never an exception", () => {
      const bundles = fc.oneof(
        hostileValue,
        fc.record({ format: fc.constantFrom("agentcap.audit.proof/v1", "x"), checkpoint: nastyText, entries: fc.array(fc.record({ index: fc.oneof(fc.integer(), fc.double()), leaf: nastyText, proof: fc.array(nastyText, { maxLength: 3 }) }), { maxLength: 3 }) }),
      );
      fc.assert(
        fc.property(bundles, nastyText, (bundle, note) => {
          expect(verifyProof(bundle, key.verifierKey).ok).toBe(false);
          expect(verifyCheckpoint(note, key.verifierKey).ok).toBe(false);
          expect(Array.isArray(splitNotes(note))).toBe(true);
        }),
        { numRuns: RUNS },
      );
    });

    it("queries take only what they describe", async () => {
      await fc.assert(
        fc.asyncProperty(hostileValue, async (value) => {
          await typedOrAccepted(() => audit.query(value as never));
          await typedOrAccepted(() => audit.query({ principal: value, since: value } as never));
          await typedOrAccepted(() => audit.verify(value as never));
        }),
        { numRuns: 20 },
      );
    });
  });
});

describe("the HTTP gateway under hostile requests", () => {
  let fixture: Fixture;
  let gateway: Gateway;
  let http: HttpGateway;
  let token: string;
  const logged: string[] = [];

  beforeAll(async () => {
    fixture = makeFixture({ listen: { limits: { headersTimeoutMs: 400, requestTimeoutMs: 800, maxHeaderBytes: 8192, maxBodyBytes: 2 * 1024 * 1024 } } });
    gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
    http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: (line) => logged.push(line) });
    token = gateway.issueToken("alice");
  });

  afterAll(async () => {
    await http.close();
    await gateway.close();
    fixture.cleanup();
  });

  const stillServing = async () => {
    const { client } = await httpClient(http.url, token);
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["list_files", "read_file"]);
    await client.close();
  };

  const post = async (body: string | Uint8Array, headers: Record<string, string> = {}) => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
      body,
    });
    return { status: res.status, text: await res.text() };
  };

  /** Not an error of the server's own: a 5xx other than "at capacity" would be a request it could not handle. */
  const handled = (status: number) => status < 500 || status === 503;

  it("JSON-RPC bodies of any shape, and bytes that are not JSON, outside a session", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostileJson, hostileBytes), async (body) => {
        const { status } = await post(body);
        expect(handled(status), `status ${status}`).toBe(true);
      }),
      { numRuns: HTTP_RUNS },
    );
    expect(logged.filter((l) => l.startsWith("500"))).toEqual([]);
    await stillServing();
  });

  it("requests of every method, and tool calls with hostile arguments, inside a session", async () => {
    const { client, transport } = await httpClient(http.url, token);
    const sessionId = transport.sessionId as string;
    const requests = fc.oneof(
      hostileJson,
      fc.record({ jsonrpc: fc.constant("2.0"), id: fc.oneof(fc.integer(), nastyText, shallowValue), method: fc.oneof(fc.constantFrom("tools/call", "tools/list", "initialize", "ping", "resources/list", "notifications/cancelled"), nastyText), params: shallowValue }).map((r) => JSON.stringify(r)),
      fc.record({ jsonrpc: fc.constant("2.0"), id: fc.integer(), method: fc.constant("tools/call"), params: fc.record({ name: fc.oneof(fc.constantFrom("read_file", "list_files"), nastyText), arguments: shallowValue }) }).map((r) => JSON.stringify(r)),
      // Arguments nested DEEP levels, in an otherwise well-formed call.
      fc.constantFrom(...DEEP_TEXTS).map((deep) => `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":${deep}}}}`),
      fc.array(fc.record({ jsonrpc: fc.constant("2.0"), id: fc.integer(), method: fc.constant("tools/call"), params: fc.record({ name: fc.constant("read_file"), arguments: fc.record({ path: nastyText }) }) }), { maxLength: 3 }).map((r) => JSON.stringify(r)),
    );
    await fc.assert(
      fc.asyncProperty(requests, async (request) => {
        const { status } = await post(request, { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" });
        expect(handled(status), `status ${status}`).toBe(true);
      }),
      { numRuns: HTTP_RUNS },
    );
    // The session survived it all.
    expect((await client.listTools()).tools.length).toBe(2);
    await client.close();
    expect(logged.filter((l) => l.startsWith("500"))).toEqual([]);
  });

  it("raw request lines and headers: answered with a 4xx or closed, never a crash", async () => {
    const { host } = new URL(http.url);
    const token68 = fc.string({ unit: fc.constantFrom(..."abcXYZ019-._~+/=".split("")), maxLength: 40 });
    // Mostly well-formed, so requests reach the gateway's own code, with the malformed mixed in.
    const visible = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 200 });
    const lines = fc.record({
      method: fc.oneof({ arbitrary: fc.constantFrom("GET", "POST", "DELETE", "PUT", "OPTIONS", "CONNECT", "TRACE", "PRI"), weight: 5 }, { arbitrary: nastyText.map((t) => t.slice(0, 20)), weight: 1 }),
      target: fc.oneof(
        { arbitrary: fc.constantFrom("/mcp", "//", "http://[", "*", "/mcp?x=%00", "/revoke", "/.well-known/oauth-protected-resource", `http://${host}/mcp`, "http://evil.example/mcp", "/%2e%2e/", "/mcp#x"), weight: 4 },
        { arbitrary: visible.map((t) => `/${t}`), weight: 2 },
        { arbitrary: nastyText.map((t) => t.slice(0, 200)), weight: 1 },
      ),
      version: fc.oneof({ arbitrary: fc.constant("HTTP/1.1"), weight: 6 }, { arbitrary: fc.constantFrom("HTTP/1.0", "HTTP/2.0", "HTTP/9", ""), weight: 1 }),
      headers: fc.array(
        fc.tuple(
          fc.oneof({ arbitrary: fc.constantFrom("Authorization", "Content-Length", "Transfer-Encoding", "Mcp-Session-Id", "Origin", "Content-Type", "Accept", "Mcp-Protocol-Version", "Last-Event-ID"), weight: 5 }, { arbitrary: nastyText.map((t) => t.slice(0, 40)), weight: 1 }),
          fc.oneof({ arbitrary: token68.map((t) => `Bearer ${t}`), weight: 2 }, { arbitrary: visible, weight: 3 }, { arbitrary: nastyText.map((t) => t.slice(0, 200)), weight: 1 }),
        ),
        { maxLength: 6 },
      ),
      withHost: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(lines, async ({ method, target, version, headers, withHost }) => {
        const head = [`${method} ${target} ${version}`, ...(withHost ? [`Host: ${host}`] : []), ...headers.map(([n, v]) => `${n}: ${v}`), "Connection: close", "", ""].join("\r\n");
        const { status } = await rawExchange(http.url, head);
        const code = Number(/^HTTP\/1\.1 (\d{3})/.exec(status)?.[1] ?? "0");
        // 0: the server closed without answering (Node does so for some malformed requests).
        expect(code === 0 || handled(code), status).toBe(true);
      }),
      { numRuns: 150 },
    );
    expect(logged.filter((l) => l.startsWith("500"))).toEqual([]);
    await stillServing();
  });
});

describePostgres("Postgres notifications from anyone who can connect", () => {
  it("forged and garbled payloads on the store's channel change nothing and stop nothing", async () => {
    const schema = `agentcap_test_${randomBytes(6).toString("hex")}`;
    const store = await openPostgresTokenStore({ connectionString: databaseUrl as string, schema });
    const keys = generateKeyPair();
    const mint = createTokenMint({ issuer: "fuzz", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store });
    const real = toToken(mint.issue({ id: "alice" }));
    const other = new pg.Client({ connectionString: databaseUrl });
    await other.connect();
    try {
      // Postgres refuses NUL in text and payloads of 8000 bytes or more itself.
      const payloads = fc.oneof(nastyText, hostileJson, fc.constantFrom('{"revoke":{"principal":"alice"}}', '{"usage":{"key":{"__proto__":1}}}', '{"usage":{"key":"x"},"revoke":1}'))
        .map((p) => p.replaceAll("\0", "").slice(0, 7000));
      await fc.assert(
        fc.asyncProperty(payloads, async (payload) => {
          await other.query("SELECT pg_notify($1, $2)", [`${schema}_token_events`, payload]);
        }),
        { numRuns: RUNS },
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(store.stats().notifications.received).toBeGreaterThanOrEqual(RUNS);
      expect(prototypeUntouched()).toBe(true);
      // Nothing was revoked by a note, and a real revocation still works.
      expect(verify(real, { publicKeys: { 1: keys.publicKey }, store }).id).toBeTruthy();
      await store.revoke({ principal: "alice" }, { reason: "real" });
      expect(() => verify(real, { publicKeys: { 1: keys.publicKey }, store })).toThrow(/revoked/);
    } finally {
      await other.end();
      await store.close();
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await admin.end();
    }
  });
});
