import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createMint } from "../../src/kernel/mint.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { attenuate, inspectVerified, revokeToken } from "../../src/token/token.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
const logged: string[] = [];

beforeAll(async () => {
  fixture = makeFixture();
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: (line) => logged.push(line) });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

/** An operator's capability that may revoke principals, bound to the gateway's store. */
const admin = () => createMint({ issuer: "test-operator", policy: () => ({ revoke: [{ target: "principal" }] }), revocations: gateway.tokenStore }).issue({ id: "operator" });

const initialize = (headers: Record<string, string>) =>
  fetch(http.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "0" } } }),
  });

describe("bearer authentication", () => {
  it("answers a request without a token with 401 and a Bearer challenge naming the resource metadata", async () => {
    const res = await initialize({});
    expect(res.status).toBe(401);
    const challenge = res.headers.get("www-authenticate") ?? "";
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain(`resource_metadata="${new URL(http.url).origin}/.well-known/oauth-protected-resource/mcp"`);
    expect(challenge).not.toContain("invalid_token");
    const meta = (await (await fetch(`${new URL(http.url).origin}/.well-known/oauth-protected-resource`)).json()) as { resource: string };
    expect(meta.resource).toBe(http.url);
  });

  it("answers a bad token with 401, error=invalid_token and a fixed description, never the parser's text", async () => {
    for (const bad of ["not-a-token", "Zm9v", gateway.issueToken("alice").slice(0, -4), `${gateway.issueToken("alice")}AAAA`]) {
      const res = await initialize({ authorization: `Bearer ${bad}` });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token", error_description="the token is malformed or its signature does not verify"');
      expect(((await res.json()) as { error: { message: string } }).error.message).toBe("ERR_INVALID_TOKEN: the token is malformed or its signature does not verify");
    }
  });

  it("answers a malformed Authorization header with 401 invalid_token", async () => {
    const res = await initialize({ authorization: "Basic dXNlcjpwYXNz" });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("refuses a token of another issuer", async () => {
    const other = makeFixture();
    try {
      const foreign = await openGateway(await loadGatewayConfig(other.configFile));
      const token = foreign.issueToken("alice");
      await foreign.close();
      const res = await initialize({ authorization: `Bearer ${token}` });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    } finally {
      other.cleanup();
    }
  });

  it("refuses a revoked token at initialize", async () => {
    const token = gateway.issueToken("alice");
    await gateway.revoke(token);
    const res = await initialize({ authorization: `Bearer ${token}` });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toContain('error="invalid_token", error_description="the token has been revoked"');
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe("ERR_REVOKED: the token has been revoked");
  });

  /** The whole 401 a client sees: status, challenge and body. */
  const seen = async (res: Response) => `${res.status} ${res.headers.get("www-authenticate") ?? ""} ${await res.text()}`;

  it("never tells the caller why an ancestor was revoked, or which block; the log does", async () => {
    const parent = gateway.issueToken("alice");
    const publicKeys = { "1": (JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { publicKey: string }).publicKey };
    const child = attenuate(parent, { tools: ["list_files"], fs: [{ path: path.join(fixture.workspace, "public"), ops: ["list"] }] }, { publicKeys });
    const [rootBlock] = inspectVerified(parent, { publicKeys, store: gateway.tokenStore });
    await gateway.revoke(parent, { reason: "HR case #4411: suspended pending investigation" });
    for (const res of [await initialize({ authorization: `Bearer ${child}` }), await fetch(`${new URL(http.url).origin}/revoke`, { method: "POST", headers: { authorization: `Bearer ${child}` } })]) {
      const text = await seen(res);
      expect(text).toMatch(/^401 /);
      expect(text).toContain("the token has been revoked");
      for (const secret of ["4411", "HR case", "investigation", "block", rootBlock?.data.id ?? "?"]) expect(text).not.toContain(secret);
    }
    expect(logged.some((line) => line.includes("ERR_REVOKED") && line.includes("HR case #4411"))).toBe(true);
  });

  it("never lists the key ids it trusts to a token signed with another key", async () => {
    const other = makeFixture();
    try {
      writeFileSync(path.join(other.dir, "keys.json"), JSON.stringify({ keyId: 4242, ...generateKeyPair() }));
      const foreign = await openGateway(await loadGatewayConfig(other.configFile));
      const token = foreign.issueToken("alice");
      await foreign.close();
      const text = await seen(await initialize({ authorization: `Bearer ${token}` }));
      expect(text).toMatch(/^401 .*error="invalid_token", error_description="the token is signed by a key this server does not trust"/);
      expect(text).toContain("ERR_INVALID_TOKEN: the token is signed by a key this server does not trust");
      for (const secret of ["4242", "key id", "known key"]) expect(text).not.toContain(secret);
      expect(logged.some((line) => line.includes("root key id 4242") && line.includes("known key ids: 1"))).toBe(true);
    } finally {
      other.cleanup();
    }
  });

  it("says an expired token has expired, and no more", async () => {
    const publicKeys = { "1": (JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { publicKey: string }).publicKey };
    const expired = attenuate(gateway.issueToken("alice"), { tools: ["list_files"], expiresAt: Date.parse("2020-01-01T00:00:00Z") }, { publicKeys });
    const text = await seen(await initialize({ authorization: `Bearer ${expired}` }));
    expect(text).toMatch(/^401 .*error_description="the token has expired"/);
    expect(text).toContain("ERR_EXPIRED: the token has expired");
    expect(text).not.toContain("2020");
  });

  it("binds a session to the token that opened it", async () => {
    const { client, transport } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const res = await fetch(http.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${gateway.issueToken("bob")}`,
          "mcp-session-id": transport.sessionId ?? "",
          "mcp-protocol-version": "2025-06-18",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list", params: {} }),
      });
      expect(res.status).toBe(403);
    } finally {
      await client.close();
    }
  });
});

describe("tools over a session", () => {
  it("advertises tools with listChanged: it says when a session's tools change (see tools-changed.test.ts)", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      expect(client.getServerCapabilities()?.tools).toEqual({ listChanged: true });
    } finally {
      await client.close();
    }
  });

  it("lists only the tools the session's capability reaches", async () => {
    const alice = await httpClient(http.url, gateway.issueToken("alice"));
    const bob = await httpClient(http.url, gateway.issueToken("bob"));
    try {
      expect((await alice.client.listTools()).tools.map((t) => t.name).sort()).toEqual(["list_files", "read_file"]);
      expect((await bob.client.listTools()).tools.map((t) => t.name)).toEqual(["list_files"]);
      const schema = (await alice.client.listTools()).tools.find((t) => t.name === "read_file")?.inputSchema;
      expect(schema?.properties).toHaveProperty("path");
    } finally {
      await alice.client.close();
      await bob.client.close();
    }
  });

  it("calls through the dispatcher: allowed inside the grant, denied outside, bad input refused, all audited", async () => {
    const token = gateway.issueToken("alice");
    const { client } = await httpClient(http.url, token);
    try {
      const ok = (await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } })) as CallToolResult;
      expect(ok.isError).toBeFalsy();
      expect(JSON.parse(textOf(ok))).toEqual({ path: "public/hello.txt", text: "hello from the workspace\n" });
      expect(ok.structuredContent).toEqual({ path: "public/hello.txt", text: "hello from the workspace\n" });

      const outside = (await client.callTool({ name: "read_file", arguments: { path: "private/secret.txt" } })) as CallToolResult;
      expect(outside.isError).toBe(true);
      expect(textOf(outside)).toMatch(/^ERR_CAPABILITY_DENIED/);
      expect(textOf(outside)).not.toContain("top secret");

      const escape = (await client.callTool({ name: "read_file", arguments: { path: "public/../private/secret.txt" } })) as CallToolResult;
      expect(textOf(escape)).toMatch(/^ERR_CAPABILITY_DENIED/);

      const bad = (await client.callTool({ name: "read_file", arguments: { path: 42 } })) as CallToolResult;
      expect(bad.isError).toBe(true);
      expect(textOf(bad)).toMatch(/^ERR_INVALID_INPUT.*path/);

      const ungranted = (await client.callTool({ name: "write_file", arguments: { path: "public/x", content: "x" } })) as CallToolResult;
      expect(textOf(ungranted)).toMatch(/^ERR_CAPABILITY_DENIED/);

      const events = await gateway.audit.query({ tool: "read_file" });
      expect(events.some((e) => e.event.outcome?.ok === true && e.event.request.action === "tool.call")).toBe(true);
      expect(events.some((e) => !e.event.decision.allowed && e.event.request.action === "fs.read")).toBe(true);
    } finally {
      await client.close();
    }
  });

  it("never shows the token to the client", async () => {
    const token = gateway.issueToken("alice");
    const { client } = await httpClient(http.url, token);
    try {
      const seen = JSON.stringify([await client.listTools(), await client.callTool({ name: "read_file", arguments: { path: "private/secret.txt" } })]);
      expect(seen).not.toContain(token.slice(0, 40));
    } finally {
      await client.close();
    }
  });
});

describe("revocation in a live session", () => {
  /** A request of the session `transport` opened, as its client would send it next: status and challenge. */
  const nextRequest = async (transport: { readonly sessionId?: string | undefined }, token: string) => {
    const res = await fetch(http.url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "mcp-session-id": transport.sessionId ?? "", "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }),
    });
    return `${res.status} ${res.headers.get("www-authenticate") ?? ""}`;
  };

  it("closes the session when its token is revoked: the client's next request gets 401 invalid_token", async () => {
    const token = gateway.issueToken("alice");
    const { client, transport } = await httpClient(http.url, token);
    try {
      expect(((await client.callTool({ name: "list_files", arguments: { path: "public" } })) as CallToolResult).isError).toBeFalsy();
      const report = await gateway.revoke(token);
      expect(report.reached.sessions).toBe(1);
      expect(await nextRequest(transport, token)).toMatch(/^401 Bearer .*error="invalid_token".*has been revoked/);
      await expect(client.callTool({ name: "list_files", arguments: { path: "public" } })).rejects.toThrow(/ERR_REVOKED: the token has been revoked/);
    } finally {
      await client.close();
    }
  });

  it("closes the session when its principal is revoked, and the gateway refuses to mint for it again", async () => {
    const token = gateway.issueToken("bob");
    const { client, transport } = await httpClient(http.url, token);
    try {
      expect(((await client.callTool({ name: "list_files", arguments: { path: "public" } })) as CallToolResult).isError).toBeFalsy();
      await gateway.tokenStore.revoke({ principal: "bob" }, { reason: "left the company", by: admin() });
      expect(await nextRequest(transport, token)).toMatch(/^401 Bearer .*error="invalid_token"/);
      expect(() => gateway.issueToken("bob")).toThrow(/reinstate/);
      await gateway.tokenStore.reinstate({ principal: "bob" });
      expect(gateway.issueToken("bob")).toMatch(/^[A-Za-z0-9_-]+/);
    } finally {
      await client.close();
    }
  });

  it("takes effect when an ancestor of an offline-attenuated token is revoked", async () => {
    const parent = gateway.issueToken("alice");
    const publicKeys = { "1": (JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { publicKey: string }).publicKey };
    const child = attenuate(parent, { tools: ["list_files"], fs: [{ path: path.join(fixture.workspace, "public"), ops: ["list"] }] }, { publicKeys });
    const { client } = await httpClient(http.url, child);
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["list_files"]);
      expect(((await client.callTool({ name: "list_files", arguments: { path: "public" } })) as CallToolResult).isError).toBeFalsy();
      await revokeToken(parent, { publicKeys, store: gateway.tokenStore, by: await gateway.authenticate(parent) });
      await expect(client.callTool({ name: "list_files", arguments: { path: "public" } })).rejects.toThrow(/ERR_REVOKED: the token has been revoked/);
    } finally {
      await client.close();
    }
  });

  it("lets a holder revoke its own token through POST /revoke", async () => {
    const token = gateway.issueToken("bob");
    const { client } = await httpClient(http.url, token);
    try {
      const origin = new URL(http.url).origin;
      expect((await fetch(`${origin}/revoke`, { method: "POST" })).status).toBe(401);
      expect((await fetch(`${origin}/revoke`, { method: "POST", headers: { authorization: "Bearer nope" } })).status).toBe(401);
      expect((await fetch(`${origin}/revoke`, { method: "POST", headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
      await expect(client.callTool({ name: "list_files", arguments: { path: "public" } })).rejects.toThrow(/ERR_REVOKED: the token has been revoked/);
    } finally {
      await client.close();
    }
  });

  it("revokes other targets only for a capability with a revoke grant, and says what it reached", async () => {
    const origin = new URL(http.url).origin;
    const post = (token: string, body: unknown) =>
      fetch(`${origin}/revoke`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const victim = gateway.issueToken("carol");
    const { client } = await httpClient(http.url, victim);
    try {
      const holder = gateway.issueToken("alice");
      const refused = await post(holder, { target: { principal: "carol" }, reason: "not yours to revoke" });
      expect(refused.status).toBe(403);
      expect(await refused.text()).not.toContain("carol");
      expect(((await client.callTool({ name: "list_files", arguments: { path: "public" } })) as CallToolResult).isError).toBeFalsy();
      expect((await post(holder, { target: { principal: "" } })).status).toBe(400);
      expect((await post(holder, { target: { principal: "carol" }, extra: 1 })).status).toBe(400);
      const ok = await post(gateway.issueToken("admin"), { target: { principal: "carol" }, reason: "left the company" });
      expect(ok.status).toBe(200);
      // The gateway minted carol's token in this process too, so the count of live capabilities may include it until it is collected.
      expect(await ok.json()).toMatchObject({ revoked: true, kind: "principal", id: "carol", reached: { tokens: 1, sessions: 1 } });
      await expect(client.callTool({ name: "list_files", arguments: { path: "public" } })).rejects.toThrow(/ERR_REVOKED: the token has been revoked/);
      const events = await gateway.audit.query({ action: "revoke", principal: "admin" });
      expect(events.map((r) => [r.event.request, r.event.outcome])).toEqual([
        [{ action: "revoke", target: "principal", id: "carol" }, { ok: true, resultBytes: null, reason: "left the company", reached: expect.objectContaining({ tokens: 1, sessions: 1 }) as unknown }],
      ]);
    } finally {
      await client.close();
    }
  });

  it("still answers a call in progress when its session is closed by a revocation, then refuses the next", async () => {
    const sleep = "/usr/bin/sleep";
    const own = makeFixture({
      policy: { roles: { worker: { tools: ["run_command"], fs: [{ path: "workspace", ops: ["list"] }], exec: [{ program: sleep, args: [{ any: true }] }] } }, principals: { dave: { roles: ["worker"] } } },
      tools: { files: { root: "workspace" }, commands: {} },
    });
    const g = await openGateway(await loadGatewayConfig(own.configFile));
    const h = await listenHttp(g, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
    const token = g.issueToken("dave");
    const { client } = await httpClient(h.url, token);
    try {
      // The program would run for a second; the client waits up to 20 s for the answer.
      const inProgress = client.callTool({ name: "run_command", arguments: { argv: [sleep, "1"], cwd: own.workspace } }, undefined, { timeout: 20_000 });
      await vi.waitFor(async () => {
        expect((await g.audit.query({ action: "exec" })).length).toBeGreaterThan(0);
      }, { timeout: 10_000, interval: 20 });
      expect((await g.revoke(token)).reached.sessions).toBe(1);
      // The revocation stops the program; the call says so to its client, which would otherwise wait until its timeout.
      const answer = (await inProgress) as CallToolResult;
      expect(answer.isError).toBe(true);
      expect(textOf(answer)).toMatch(/^ERR_REVOKED: /);
      await expect(client.callTool({ name: "run_command", arguments: { argv: [sleep, "0"], cwd: own.workspace } })).rejects.toThrow(/ERR_REVOKED: the token has been revoked/);
    } finally {
      await client.close();
      await h.close();
      await g.close();
      own.cleanup();
    }
  }, 30_000);
});

describe("malformed requests", () => {
  /** Sends raw bytes on a fresh connection and returns the status line of the answer (or "" when the server closed it). */
  const raw = (bytes: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const { port, hostname } = new URL(http.url);
      const socket = connect(Number(port), hostname, () => socket.end(bytes));
      let answer = "";
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => (answer += chunk));
      socket.on("error", reject);
      socket.on("close", () => { resolve(answer.split("\r\n")[0] ?? ""); });
    });

  const lines: readonly (readonly [string, string])[] = [
    ["a path of two slashes", "GET // HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["a scheme-relative target with a bad host", "GET //[ HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["an absolute-form target", "GET http://evil.example/mcp HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["an absolute-form target with a bad host", "GET http://[/mcp HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["a lone percent", "GET /% HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["a path of many slashes", `GET ${"/".repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
    ["an over-long header", `GET /mcp HTTP/1.1\r\nHost: x\r\nX-Long: ${"a".repeat(20_000)}\r\n\r\n`],
    ["garbage", "\u0000\u0001\u0002 nonsense\r\n\r\n"],
  ];

  it.each(lines)("survives %s and keeps serving", async (_name, bytes) => {
    const status = await raw(bytes);
    expect(status === "" || /^HTTP\/1\.1 [45]\d\d /.test(status)).toBe(true);
    const meta = await fetch(`${new URL(http.url).origin}/.well-known/oauth-protected-resource`);
    expect(meta.status).toBe(200);
  });
});
