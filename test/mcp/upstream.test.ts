import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult, JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import type { Capability } from "../../src/kernel/capability.ts";
import { CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { constrainArguments, guardUpstream, upstreamTransport } from "../../src/mcp/upstream.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * A real upstream nobody here wrote: @modelcontextprotocol/server-filesystem,
 * allowed the whole upstream folder. agentcap grants only its `granted`
 * subfolder; the upstream would happily read `other/`, so a refusal there
 * is agentcap's. Every message sent to the upstream is recorded.
 */

const serverScript = path.resolve("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
let fixture: Fixture;
let root: string;
let gateway: Gateway;
let http: HttpGateway;
const sent: JSONRPCMessage[] = [];
const callsSent = () => sent.filter((m) => "method" in m && m.method === "tools/call");

beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), "agentcap-upstream-"));
  mkdirSync(path.join(root, "granted"));
  mkdirSync(path.join(root, "other"));
  writeFileSync(path.join(root, "granted", "notes.txt"), "granted notes\n");
  writeFileSync(path.join(root, "other", "marker.txt"), "the upstream could read this\n");
  fixture = makeFixture({
    policy: {
      roles: {
        upstream: {
          tools: ["fs__read_text_file", "fs__list_directory", "fs__write_file", "fs__move_file"],
          fs: [{ path: path.join(root, "granted"), ops: ["read", "list", "write", "delete"] }],
        },
      },
      principals: { alice: { roles: ["upstream"] } },
    },
    upstreams: [
      {
        name: "fs",
        command: process.execPath,
        args: [serverScript, root],
        root,
        tools: {
          read_text_file: { path: "fs.read" },
          list_directory: { path: "fs.list" },
          write_file: { path: "fs.write" },
          move_file: { source: ["fs.read", "fs.delete"], destination: "fs.write" },
        },
      },
    ],
  });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile), {
    guard: (config, options) => {
      const transport = upstreamTransport(config);
      const send = transport.send.bind(transport);
      transport.send = (message, options) => {
        sent.push(message);
        return send(message, options);
      };
      return guardUpstream(config, { ...options, transport });
    },
  });
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
  rmSync(root, { recursive: true, force: true });
});

describe("upstream guard in front of @modelcontextprotocol/server-filesystem", () => {
  it("exposes only the configured upstream tools, prefixed, with the upstream's own schemas", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const tools = (await client.listTools()).tools;
      expect(tools.map((t) => t.name).sort()).toEqual(["fs__list_directory", "fs__move_file", "fs__read_text_file", "fs__write_file"]);
      expect(tools.find((t) => t.name === "fs__read_text_file")?.inputSchema.required).toContain("path");
    } finally {
      await client.close();
    }
  });

  it("passes calls inside the granted folder to the upstream", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const before = callsSent().length;
      const read = await client.callTool({ name: "fs__read_text_file", arguments: { path: "granted/notes.txt" } });
      expect(read.isError).toBeFalsy();
      expect(textOf(read)).toContain("granted notes");
      // The upstream received the canonical absolute path agentcap authorized.
      const last = callsSent().at(-1) as unknown as { params: { arguments: { path: string } } };
      expect(last.params.arguments.path).toBe(path.join(root, "granted", "notes.txt"));
      expect(callsSent().length).toBe(before + 1);
      const list = await client.callTool({ name: "fs__list_directory", arguments: { path: path.join(root, "granted") } });
      expect(textOf(list)).toContain("notes.txt");
    } finally {
      await client.close();
    }
  });

  it("denies calls outside the granted folder before the upstream sees them", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const before = callsSent().length;
      for (const args of [
        { name: "fs__read_text_file", arguments: { path: "other/marker.txt" } },
        { name: "fs__read_text_file", arguments: { path: "granted/../other/marker.txt" } },
        { name: "fs__read_text_file", arguments: { path: "/etc/passwd" } },
        { name: "fs__list_directory", arguments: { path: root } },
        { name: "fs__write_file", arguments: { path: "other/new.txt", content: "x" } },
        { name: "fs__move_file", arguments: { source: "other/marker.txt", destination: "granted/stolen.txt" } },
      ]) {
        const r = await client.callTool(args);
        expect(r.isError, JSON.stringify(args)).toBe(true);
        expect(textOf(r)).toMatch(/^ERR_CAPABILITY_DENIED/);
        expect(textOf(r)).not.toContain("could read this");
      }
      expect(callsSent().length).toBe(before);
    } finally {
      await client.close();
    }
  });

  it("refuses a constrained argument that is missing or not a string, before the upstream sees it", async () => {
    const { client } = await httpClient(http.url, gateway.issueToken("alice"));
    try {
      const before = callsSent().length;
      expect(textOf(await client.callTool({ name: "fs__read_text_file", arguments: {} }))).toMatch(/^ERR_INVALID_INPUT.*argument path must be a string/);
      expect(textOf(await client.callTool({ name: "fs__read_text_file", arguments: { path: { evil: true } } }))).toMatch(/^ERR_INVALID_INPUT/);
      expect(callsSent().length).toBe(before);
    } finally {
      await client.close();
    }
  });

  it("refuses to start when the configuration names a tool the upstream lacks", async () => {
    const config = { name: "fs", command: process.execPath, args: [serverScript, root], root, tools: { format_disk: {} } };
    await expect(guardUpstream(config)).rejects.toThrow(/upstream fs has no tool named format_disk; it offers .*read_text_file/);
  });
});

describe("constrainArguments", () => {
  it("canonicalizes paths and URLs, and refuses what cannot be one", () => {
    const { needs, args } = constrainArguments("t", { p: "fs.read", u: "http.GET", many: "fs.list" }, { p: "a/../b", u: "HTTP://Example.COM:80/x", many: ["/x", "/y"], other: 1 }, { name: "u", root: "/srv" });
    expect(args).toEqual({ p: "/srv/b", u: "http://example.com/x", many: ["/x", "/y"], other: 1 });
    expect(needs).toEqual([
      { action: "fs.read", path: "/srv/b" },
      { action: "http.request", method: "GET", url: "http://example.com/x" },
      { action: "fs.list", path: "/x" },
      { action: "fs.list", path: "/y" },
    ]);
    expect(() => constrainArguments("t", { u: "http.GET" }, { u: "not a url" }, { name: "u", root: "/" })).toThrow(InvalidInput);
    expect(() => constrainArguments("t", { p: "fs.read" }, { p: "rel" }, { name: "u" })).toThrow(/needs the upstream's root/);
    expect(() => constrainArguments("t", { p: "fs.read" }, { p: "a\0b" }, { name: "u", root: "/" })).toThrow(/NUL/);
    expect(() => constrainArguments("t", { p: "fs.read" }, { p: [1] }, { name: "u", root: "/" })).toThrow(/must be a string or an array of strings/);
  });

  it("refuses the URLs the HTTP resource refuses, and host names when the upstream takes IP literals only", () => {
    const url = (u: string, upstream: Parameters<typeof constrainArguments>[3] = { name: "u" }) => () => constrainArguments("t", { u: "http.GET" }, { u }, upstream);
    expect(url("http://granted.example@169.254.169.254/")).toThrow(/t: argument u: .*userinfo/);
    expect(url("file:///etc/passwd")).toThrow(/only http: and https: are allowed/);
    expect(url("http://granted.example/a/%2e%2e/%2e%2e/admin")().args).toEqual({ u: "http://granted.example/admin" });
    const literalOnly = { name: "u", urlHosts: "ip-literal" } as const;
    expect(url("http://granted.example/", literalOnly)).toThrow(/takes only URLs whose host is an IP address/);
    expect(url("http://169.254.169.254/", literalOnly)().needs).toEqual([{ action: "http.request", method: "GET", url: "http://169.254.169.254/" }]);
    expect(url("http://[::1]:8080/x", literalOnly)().args).toEqual({ u: "http://[::1]:8080/x" });
  });
});

/*
 * URL arguments. An in-process upstream with a `fetch` tool that only
 * records the URLs it is given stands in for a server that would fetch them;
 * the gateway's resolver maps made-up names to the addresses an attacker
 * would point a granted name at. Beside it, the built-in fetch tool under the
 * same grant and resolver shows the guard refuses what the HTTP resource
 * refuses.
 */
describe("upstream guard on URL arguments", () => {
  const answers: Readonly<Record<string, readonly string[]>> = {
    "public.example": ["93.184.216.34"],
    "metadata.example": ["169.254.169.254"],
    "loopback.example": ["127.0.0.1"],
    "intranet.example": ["10.1.2.3"],
    "mixed.example": ["93.184.216.34", "10.0.0.1"],
    "mapped.example": ["::ffff:169.254.169.254"],
    "private-ok.example": ["10.0.0.8"],
  };
  const granted = Object.keys(answers).filter((h) => h !== "private-ok.example");
  const asked: string[] = [];
  const reached: { upstream: string; url: string }[] = [];
  let setup: Fixture;
  let gw: Gateway;
  let alice: Capability;

  const upstreamServer = (name: string): McpServer => {
    const server = new McpServer({ name: `${name}-upstream`, version: "0.0.0" });
    server.registerTool("fetch", { description: "Fetches a URL.", inputSchema: { url: z.string() } }, ({ url }) => {
      reached.push({ upstream: name, url });
      return { content: [{ type: "text", text: `fetched ${url}` }] };
    });
    return server;
  };

  beforeAll(async () => {
    setup = makeFixture({
      policy: {
        roles: {
          web: {
            tools: ["web__fetch", "webip__fetch", "fetch_url"],
            http: [
              ...granted.map((h) => ({ origin: `http://${h}`, methods: ["GET"] })),
              { origin: "http://private-ok.example", methods: ["GET"], allowPrivateNetwork: true },
              { origin: "http://10.0.0.9", methods: ["GET"] },
            ],
          },
        },
        principals: { alice: { roles: ["web"] } },
      },
      tools: { http: {} },
      upstreams: [
        { name: "web", command: "never-started", tools: { fetch: { url: "http.GET" } } },
        { name: "webip", command: "never-started", urlHosts: "ip-literal", tools: { fetch: { url: "http.GET" } } },
      ],
    });
    gw = await openGateway(await loadGatewayConfig(setup.configFile), {
      resolver: (host) => {
        asked.push(host);
        const found = answers[host];
        return found === undefined ? Promise.reject(new Error(`no such host ${host}`)) : Promise.resolve(found);
      },
      guard: async (config, options) => {
        const [client, server] = InMemoryTransport.createLinkedPair();
        await upstreamServer(config.name).connect(server);
        return guardUpstream(config, { ...options, transport: client });
      },
    });
    alice = await gw.authenticate(gw.issueToken("alice"), { fresh: true });
  });

  afterAll(async () => {
    await gw.close();
    setup.cleanup();
  });

  const call = (tool: string, url: string) => gw.dispatcher.call(tool, { url }, alice);

  it.each([
    ["a name pointing at the cloud metadata address", "http://metadata.example/latest/meta-data/", /169\.254\.169\.254 \(link-local\)/],
    ["a name pointing at loopback", "http://loopback.example/admin", /127\.0\.0\.1 \(loopback\)/],
    ["a name pointing at a private network", "http://intranet.example/", /10\.1\.2\.3 \(private\)/],
    ["a name with one public and one private answer", "http://mixed.example/", /10\.0\.0\.1 \(private\)/],
    ["a name answering with an IPv4-mapped IPv6 address", "http://mapped.example/", /::ffff:169\.254\.169\.254 \(link-local\)/],
  ])("denies %s, as the fetch tool does, before the upstream sees it", async (_name, url, why) => {
    const before = reached.length;
    const denied = await call("web__fetch", url).then(() => null, (e: unknown) => e);
    expect(denied).toBeInstanceOf(CapabilityDenied);
    expect((denied as CapabilityDenied).details.rule).toBe("http.address");
    expect((denied as CapabilityDenied).message).toMatch(why);
    const builtin = await call("fetch_url", url).then(() => null, (e: unknown) => e);
    expect(builtin).toBeInstanceOf(CapabilityDenied);
    expect((builtin as CapabilityDenied).details.rule).toBe("http.address");
    expect(reached.length).toBe(before);
  });

  it("passes a granted name with public answers, a name granted private addresses, and a granted IP literal, canonicalized", async () => {
    const before = reached.length;
    const ok = (await call("web__fetch", "HTTP://Public.Example:80/a/./b")) as CallToolResult;
    expect(textOf(ok)).toBe("fetched http://public.example/a/b");
    await call("web__fetch", "http://private-ok.example/");
    asked.length = 0;
    await call("web__fetch", "http://10.0.0.9/status");
    expect(asked).toEqual([]);
    expect(reached.slice(before)).toEqual([
      { upstream: "web", url: "http://public.example/a/b" },
      { upstream: "web", url: "http://private-ok.example/" },
      { upstream: "web", url: "http://10.0.0.9/status" },
    ]);
  });

  it("asks the resolver nothing for a URL the grant does not name, or one with userinfo", async () => {
    asked.length = 0;
    const before = reached.length;
    await expect(call("web__fetch", "http://ungranted.example/")).rejects.toThrow(CapabilityDenied);
    await expect(call("web__fetch", "http://public.example@169.254.169.254/")).rejects.toThrow(/userinfo/);
    expect(asked).toEqual([]);
    expect(reached.length).toBe(before);
  });

  it("refuses a name as host when the upstream takes IP literals only, and checks the literal against the grant", async () => {
    asked.length = 0;
    const before = reached.length;
    await expect(call("webip__fetch", "http://public.example/")).rejects.toThrow(/webip takes only URLs whose host is an IP address/);
    await expect(call("webip__fetch", "http://169.254.169.254/latest/meta-data/")).rejects.toThrow(CapabilityDenied);
    expect(reached.length).toBe(before);
    expect(textOf(await call("webip__fetch", "http://10.0.0.9/status"))).toBe("fetched http://10.0.0.9/status");
    expect(asked).toEqual([]);
  });
});
