import { readFileSync } from "node:fs";
import { request } from "node:http";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createMint } from "../../src/kernel/mint.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { attenuate } from "../../src/token/token.ts";
import { httpClient, makeFixture, type Fixture } from "./support.ts";

/*
 * The gateway keeps a bounded number of sessions: per token, per principal
 * and in all; idle ones, expired ones, revoked ones and those their client
 * ended (DELETE) are closed, and what they held is freed.
 */

const LIMITS = { max: 20, maxPerPrincipal: 8, maxPerToken: 5, idleTimeoutMs: 600_000, maxConcurrentCalls: 4, maxQueuedCalls: 1000 };

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;

beforeAll(async () => {
  fixture = makeFixture({ sessions: LIMITS });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

const headers = (token: string, session?: string): Record<string, string> => ({
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
  authorization: `Bearer ${token}`,
  ...(session === undefined ? {} : { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" }),
});

/** Sends an initialize as a client that never says goodbye: the status and the session id it was given. */
async function initialize(token: string): Promise<{ status: number; session: string | null; body: string }> {
  const res = await fetch(http.url, {
    method: "POST",
    headers: headers(token),
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } }),
  });
  return { status: res.status, session: res.headers.get("mcp-session-id"), body: await res.text() };
}

/** A tools/list request in session `session`: its status. */
async function listTools(token: string, session: string): Promise<number> {
  const res = await fetch(http.url, { method: "POST", headers: headers(token, session), body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }) });
  await res.text();
  return res.status;
}

/**
 * Keeps session `session` busy: a request whose body has not all arrived yet
 * (authenticated, so it counts). Resolves once the gateway has it; the
 * function it gives ends the request.
 */
async function busy(token: string, session: string): Promise<() => void> {
  const { hostname, port } = new URL(http.url);
  const req = request({ host: hostname, port, path: "/mcp", method: "POST", headers: { ...headers(token, session), "content-length": "100" } });
  req.on("error", () => undefined);
  req.write("{");
  // The gateway has read the headers once the session counts as busy; nothing answers yet, so wait a moment for it to get there.
  await new Promise((resolve) => setTimeout(resolve, 500));
  return () => req.destroy();
}

/** Closes every open session, so each test starts from none. */
async function closeAll(tokens: readonly string[], sessions: readonly (string | null)[]): Promise<void> {
  for (const [i, s] of sessions.entries()) {
    if (s !== null) await fetch(http.url, { method: "DELETE", headers: headers(tokens[i % tokens.length] as string, s) }).then((r) => r.text());
  }
}

/** The garbage collector, reached without starting node with --expose-gc. */
function collector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("session limits", () => {
  it("keeps at most maxPerToken sessions of a token that never sends DELETE, replacing its least recently used idle one", async () => {
    const token = gateway.issueToken("alice");
    const opened: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await initialize(token);
      expect(r.status).toBe(200);
      opened.push(r.session as string);
      expect(http.openSessions()).toBe(Math.min(i + 1, LIMITS.maxPerToken));
    }
    // The five most recent are open; the first seven were replaced and are unknown now.
    expect(await listTools(token, opened[0] as string)).toBe(404);
    expect(await listTools(token, opened[11] as string)).toBe(200);
    // Using a session makes it the most recently used: the next one replaces another.
    expect(await listTools(token, opened[7] as string)).toBe(200);
    const next = await initialize(token);
    expect(await listTools(token, opened[7] as string)).toBe(200);
    expect(await listTools(token, opened[8] as string)).toBe(404);
    await closeAll([token], [...opened.slice(7), next.session]);
    expect(http.openSessions()).toBe(0);
  });

  it("keeps at most maxPerPrincipal sessions of one principal across its tokens", async () => {
    const tokens = [gateway.issueToken("alice"), gateway.issueToken("alice"), gateway.issueToken("alice")];
    const opened: (string | null)[] = [];
    for (let i = 0; i < 15; i++) opened.push((await initialize(tokens[i % 3] as string)).session);
    expect(opened.every((s) => s !== null)).toBe(true);
    expect(http.openSessions()).toBe(LIMITS.maxPerPrincipal);
    await closeAll(tokens, opened);
    expect(http.openSessions()).toBe(0);
  });

  it("refuses a token's new session with 429 when every one of its sessions is busy, and takes it once one is free", async () => {
    const token = gateway.issueToken("alice");
    const opened: string[] = [];
    const streams: (() => void)[] = [];
    for (let i = 0; i < LIMITS.maxPerToken; i++) {
      const s = (await initialize(token)).session as string;
      opened.push(s);
      streams.push(await busy(token, s));
    }
    const refused = await initialize(token);
    expect(refused.status).toBe(429);
    expect(refused.body).toContain(`this token already has ${LIMITS.maxPerToken} sessions with requests in progress`);
    expect(http.openSessions()).toBe(LIMITS.maxPerToken);
    streams[2]?.();
    const later: (string | null)[] = [];
    await vi.waitFor(async () => {
      const r = await initialize(token);
      later.push(r.session);
      expect(r.status).toBe(200);
    });
    expect(await listTools(token, opened[2] as string)).toBe(404);
    for (const release of streams) release();
    await closeAll([token], [...opened, ...later]);
    expect(http.openSessions()).toBe(0);
  });

  it("refuses a new session with 503 when the gateway holds max sessions, closing no one else's", async () => {
    // Two tokens for each of three principals: no token or principal reaches its own limit first.
    const tokens = ["alice", "bob", "carol", "alice", "bob", "carol"].map((p) => gateway.issueToken(p));
    const opened: (string | null)[] = [];
    for (let i = 0; i < LIMITS.max; i++) opened.push((await initialize(tokens[i % tokens.length] as string)).session);
    expect(http.openSessions()).toBe(LIMITS.max);
    const refused = await initialize(gateway.issueToken("bob"));
    expect(refused.status).toBe(503);
    expect(refused.body).toContain("as many sessions as it may hold");
    expect(await listTools(tokens[0] as string, opened[0] as string)).toBe(200);
    await closeAll(tokens, opened);
    expect(http.openSessions()).toBe(0);
  });
});

describe("sessions end", () => {
  it("when the client sends DELETE, as the SDK's terminateSession does", async () => {
    const token = gateway.issueToken("alice");
    const { client, transport } = await httpClient(http.url, token);
    const id = transport.sessionId as string;
    expect(http.openSessions()).toBe(1);
    await transport.terminateSession();
    expect(http.openSessions()).toBe(0);
    expect(await listTools(token, id)).toBe(404);
    await client.close();
  });

  it("when their principal is revoked", async () => {
    const token = gateway.issueToken("carol");
    const a = await initialize(token);
    const b = await initialize(gateway.issueToken("carol"));
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(http.openSessions()).toBe(2);
    const admin = createMint({ issuer: "test-operator", policy: () => ({ revoke: [{ target: "principal" }] }), revocations: gateway.tokenStore }).issue({ id: "operator" });
    await gateway.tokenStore.revoke({ principal: "carol" }, { reason: "left", by: admin });
    await vi.waitFor(() => {
      expect(http.openSessions()).toBe(0);
    });
    await gateway.tokenStore.reinstate({ principal: "carol" });
  });

  it("when their token expires", async () => {
    const publicKeys = { "1": (JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { publicKey: string }).publicKey };
    const token = attenuate(gateway.issueToken("alice"), { expiresAt: Date.now() + 1500 }, { publicKeys });
    const { session } = await initialize(token);
    expect(http.openSessions()).toBe(1);
    await vi.waitFor(() => {
      expect(http.openSessions()).toBe(0);
    }, { timeout: 10_000 });
    expect(await listTools(token, session as string)).toBe(401);
  });
});

describe("idle sessions", () => {
  it("are closed after idleTimeoutMs without a request; a session in use is kept", async () => {
    const f = makeFixture({ sessions: { idleTimeoutMs: 1500 } });
    const g = await openGateway(await loadGatewayConfig(f.configFile));
    const h = await listenHttp(g, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
    try {
      const token = g.issueToken("alice");
      const idle = await httpClient(h.url, token);
      const busy = await httpClient(h.url, token);
      expect(h.openSessions()).toBe(2);
      // One request every 100 ms keeps the busy session alive past the idle one's end.
      await vi.waitFor(async () => {
        await busy.client.listTools();
        expect(h.openSessions()).toBe(1);
      }, { timeout: 10_000, interval: 100 });
      await expect(idle.client.listTools()).rejects.toThrow(/session not found/);
      expect((await busy.client.listTools()).tools.length).toBeGreaterThan(0);
      await Promise.all([idle.client.close(), busy.client.close()]);
    } finally {
      await h.close();
      await g.close();
      f.cleanup();
    }
  });
});

describe("memory", () => {
  it("stays bounded through 10,000 sessions opened without DELETE: the count at its limits, the heap back near its baseline", async () => {
    const gc = collector();
    const tokens = ["alice", "bob", "carol"].map((p) => gateway.issueToken(p));
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    // Warm up: every code path taken once, so what follows measures sessions, not first-use costs.
    for (let i = 0; i < 50; i++) await initialize(tokens[i % 3] as string);
    const baseline = heap();
    const SESSIONS = 10_000;
    const CHECK_EVERY = 2_000;
    const grown: number[] = [];
    let opened = 0;
    let most = 0;
    // Raw initializes, eight at a time: each leaves a session its client never ends, as SDK clients that only close() do.
    const worker = async (w: number, from: number, to: number) => {
      for (let i = from + w; i < to; i += 8) {
        const r = await initialize(tokens[i % 3] as string);
        expect(r.status).toBe(200);
        opened += 1;
        most = Math.max(most, http.openSessions());
      }
    };
    for (let from = 0; from < SESSIONS; from += CHECK_EVERY) {
      await Promise.all([...Array(8).keys()].map((w) => worker(w, from, from + CHECK_EVERY)));
      grown.push(heap() - baseline);
    }
    expect(opened).toBe(SESSIONS);
    expect(most).toBeLessThanOrEqual(LIMITS.max);
    expect(http.openSessions()).toBe(3 * LIMITS.maxPerToken);
    // Sessions held take tens of KB each (hundreds of MB for 10,000); those replaced must have been freed, at every step.
    expect(Math.max(...grown), `heap growth after each ${CHECK_EVERY} sessions: ${grown.map((g) => `${(g / 1048576).toFixed(1)} MB`).join(", ")}`).toBeLessThan(10 * 1024 * 1024);
    // About 2.5 ms of CPU per session (client and gateway together): half a minute on an idle machine; the limit is for loaded ones.
  }, 900_000);
});

describe("calls at once", () => {
  it("runs at most maxCallsPerSession calls of one session at a time, while another session's call is served", async () => {
    const sleep = "/usr/bin/sleep";
    const own = makeFixture({
      sessions: { ...LIMITS, maxCallsPerSession: 1 },
      policy: { roles: { worker: { tools: ["run_command"], fs: [{ path: "workspace", ops: ["list"] }], exec: [{ program: sleep, args: [{ any: true }] }] } }, principals: { dave: { roles: ["worker"] }, erin: { roles: ["worker"] } } },
      tools: { files: { root: "workspace" }, commands: {} },
    });
    const g = await openGateway(await loadGatewayConfig(own.configFile));
    const h = await listenHttp(g, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
    const dave = await httpClient(h.url, g.issueToken("dave"));
    const erin = await httpClient(h.url, g.issueToken("erin"));
    try {
      const run = (c: typeof dave, seconds: string) => c.client.callTool({ name: "run_command", arguments: { argv: [sleep, seconds], cwd: own.workspace } }, undefined, { timeout: 60_000 }) as Promise<CallToolResult>;
      const daves = [run(dave, "0.3"), run(dave, "0.3"), run(dave, "0.3")];
      const erins = run(erin, "0");
      expect((await Promise.all([...daves, erins])).filter((r) => r.isError === true)).toEqual([]);
      // Dave's programs ran one after another: none began before the one before it had ended.
      const spans = (await g.audit.query({ action: "exec", principal: "dave" })).map((r) => [r.event.at, r.event.at + (r.event.durationMs ?? Infinity)] as const).sort((a, b) => a[0] - b[0]);
      expect(spans).toHaveLength(3);
      for (let i = 1; i < spans.length; i++) expect(spans[i]?.[0]).toBeGreaterThanOrEqual(spans[i - 1]?.[1] ?? Infinity);
    } finally {
      await dave.client.close();
      await erin.client.close();
      await h.close();
      await g.close();
      own.cleanup();
    }
  }, 60_000);

  it("runs 200 concurrent calls of one session through maxConcurrentCalls turns, every one answered", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const results = await Promise.all([...Array(200).keys()].map(() => client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }) as Promise<CallToolResult>));
      expect(results.filter((r) => r.isError === true)).toEqual([]);
    } finally {
      await client.close();
    }
  });
});
