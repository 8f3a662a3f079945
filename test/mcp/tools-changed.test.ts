import { readFileSync } from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer, type RegisteredTool } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { guardUpstream } from "../../src/mcp/upstream.ts";
import { attenuate } from "../../src/token/token.ts";
import { makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * notifications/tools/list_changed, received by the official SDK client:
 * the gateway advertises tools.listChanged and tells a session's client when
 * the tools its session reaches change while it lasts.
 */

/** An SDK client over HTTP that records every tool list the gateway's notifications lead it to (the SDK lists the tools again on each). */
async function watchingClient(url: string, token: string): Promise<{ client: Client; lists: string[][]; close: () => Promise<void> }> {
  const lists: string[][] = [];
  const client = new Client(
    { name: "list-watcher", version: "0" },
    { listChanged: { tools: { debounceMs: 0, onChanged: (error, tools) => { if (error === null && tools !== null) lists.push(tools.map((t) => t.name)); } } } },
  );
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  return {
    client,
    lists,
    close: async () => {
      await transport.terminateSession();
      await client.close();
    },
  };
}

describe("an upstream's tool list changes", () => {
  let fixture: Fixture;
  let gateway: Gateway;
  let http: HttpGateway;
  let upstream: McpServer;
  let second: RegisteredTool;
  let first: RegisteredTool;

  beforeAll(async () => {
    fixture = makeFixture({
      policy: { roles: { user: { tools: ["up__first", "up__second"] } }, principals: { alice: { roles: ["user"] } } },
      upstreams: [{ name: "up", command: "never-started", tools: { first: {}, second: {} } }],
    });
    upstream = new McpServer({ name: "changing-upstream", version: "0" });
    first = upstream.registerTool("first", { description: "the first tool", inputSchema: { n: z.number() } }, () => ({ content: [{ type: "text", text: "first" }] }));
    second = upstream.registerTool("second", { description: "the second tool" }, () => ({ content: [{ type: "text", text: "second" }] }));
    gateway = await openGateway(await loadGatewayConfig(fixture.configFile), {
      guard: async (config, options) => {
        const [client, server] = InMemoryTransport.createLinkedPair();
        await upstream.connect(server);
        return guardUpstream(config, { ...options, transport: client });
      },
    });
    http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  });

  afterAll(async () => {
    await http.close();
    await gateway.close();
    fixture.cleanup();
  });

  it("tells the session's client when an upstream tool vanishes, comes back or changes its schema; a vanished tool refuses calls", async () => {
    const alice = await watchingClient(http.url, gateway.issueToken("alice"));
    try {
      expect(alice.client.getServerCapabilities()?.tools).toEqual({ listChanged: true });
      expect((await alice.client.listTools()).tools.map((t) => t.name)).toEqual(["up__first", "up__second"]);

      second.disable();
      await vi.waitFor(() => { expect(alice.lists).toEqual([["up__first"]]); }, { timeout: 10_000 });
      const refused = await alice.client.callTool({ name: "up__second", arguments: {} });
      expect(refused.isError).toBe(true);
      expect(textOf(refused)).toBe("ERR_INVALID_INPUT: upstream up no longer offers tool second");

      second.enable();
      await vi.waitFor(() => { expect(alice.lists).toEqual([["up__first"], ["up__first", "up__second"]]); }, { timeout: 10_000 });
      expect(textOf(await alice.client.callTool({ name: "up__second", arguments: {} }))).toBe("second");

      first.update({ paramsSchema: { n: z.number(), label: z.string() } });
      await vi.waitFor(() => { expect(alice.lists).toHaveLength(3); }, { timeout: 10_000 });
      const shown = (await alice.client.listTools()).tools.find((t) => t.name === "up__first") as Tool;
      expect(Object.keys(shown.inputSchema.properties ?? {})).toEqual(["n", "label"]);
      expect(shown.description).toBe("the first tool (via agentcap from upstream up)");
    } finally {
      await alice.close();
    }
  });

  it("says nothing when the upstream changes a tool the configuration does not expose", async () => {
    const alice = await watchingClient(http.url, gateway.issueToken("alice"));
    try {
      await alice.client.listTools();
      const extra = upstream.registerTool("unexposed", { description: "not configured" }, () => ({ content: [] }));
      extra.remove();
      // The change that follows is one that does concern the session: it is the first and only list its client is sent.
      second.disable();
      await vi.waitFor(() => { expect(alice.lists).toEqual([["up__first"]]); }, { timeout: 10_000 });
      second.enable();
    } finally {
      await alice.close();
    }
  });
});

describe("a session's capability changes what it reaches", () => {
  let fixture: Fixture;
  let gateway: Gateway;
  let http: HttpGateway;
  let publicKeys: Record<string, string>;

  beforeAll(async () => {
    fixture = makeFixture();
    gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
    http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
    publicKeys = { "1": (JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { publicKey: string }).publicKey };
  });

  afterAll(async () => {
    await http.close();
    await gateway.close();
    fixture.cleanup();
  });

  /** Everything alice's role grants: a link that adds conditions keeps her tools. */
  const aliceGrant = () => ({ tools: ["read_file", "list_files"], fs: [{ path: path.join(fixture.workspace, "public"), ops: ["read" as const, "list" as const] }] });

  it("over HTTP: the call that spends the last of a token's budget leaves no tool, and the client is told", async () => {
    const token = attenuate(gateway.issueToken("alice"), { ...aliceGrant(), budget: { calls: 4 } }, { publicKeys });
    const alice = await watchingClient(http.url, token);
    try {
      expect((await alice.client.listTools()).tools.map((t) => t.name)).toEqual(["read_file", "list_files"]);
      const read = { name: "read_file", arguments: { path: "public/hello.txt" } };
      // Each call spends two of the budget's calls: the tool call and its file read.
      expect(textOf(await alice.client.callTool(read))).toContain("hello from the workspace");
      expect(textOf(await alice.client.callTool(read))).toContain("hello from the workspace");
      await vi.waitFor(() => { expect(alice.lists).toEqual([[]]); }, { timeout: 10_000 });
      expect(textOf(await alice.client.callTool(read))).toMatch(/^ERR_BUDGET_EXHAUSTED/);
      // Told once: the first call left room, and the refused one changed nothing.
      expect(alice.lists).toEqual([[]]);
    } finally {
      await alice.close();
    }
  });

  it("over stdio: revoking the session's token, from another process, leaves no tool, and the client is told", async () => {
    const token = gateway.issueToken("alice");
    const lists: string[][] = [];
    const client = new Client(
      { name: "stdio-watcher", version: "0" },
      { listChanged: { tools: { debounceMs: 0, onChanged: (error, tools) => { if (error === null && tools !== null) lists.push(tools.map((t) => t.name)); } } } },
    );
    const bin = path.resolve("bin/agentcap.js");
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [bin, "serve", "--stdio", "--config", fixture.configFile, "--token", token], env: { PATH: process.env.PATH ?? "" }, stderr: "pipe" }));
    try {
      expect(client.getServerCapabilities()?.tools).toEqual({ listChanged: true });
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["read_file", "list_files"]);
      await gateway.revoke(token);
      await vi.waitFor(() => { expect(lists).toEqual([[]]); }, { timeout: 15_000 });
    } finally {
      await client.close();
    }
  });

  it("over stdio: a token that expires leaves no tool, and the client is told", async () => {
    // Time for a loaded machine to start the process before the token expires (it would refuse to start then).
    const token = attenuate(gateway.issueToken("alice"), { ...aliceGrant(), expiresAt: Date.now() + 8000 }, { publicKeys });
    const lists: string[][] = [];
    const client = new Client(
      { name: "stdio-watcher", version: "0" },
      { listChanged: { tools: { debounceMs: 0, onChanged: (error, tools) => { if (error === null && tools !== null) lists.push(tools.map((t) => t.name)); } } } },
    );
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [path.resolve("bin/agentcap.js"), "serve", "--stdio", "--config", fixture.configFile, "--token", token], env: { PATH: process.env.PATH ?? "" }, stderr: "pipe" }));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["read_file", "list_files"]);
      await vi.waitFor(() => { expect(lists).toEqual([[]]); }, { timeout: 20_000 });
    } finally {
      await client.close();
    }
  }, 30_000);
});
