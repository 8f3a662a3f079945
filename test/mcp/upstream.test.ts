import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidInput } from "../../src/kernel/errors.ts";
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
    guard: (config) => {
      const transport = upstreamTransport(config);
      const send = transport.send.bind(transport);
      transport.send = (message, options) => {
        sent.push(message);
        return send(message, options);
      };
      return guardUpstream(config, transport);
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
    const { needs, args } = constrainArguments("t", { p: "fs.read", u: "http.GET", many: "fs.list" }, { p: "a/../b", u: "HTTP://Example.COM:80/x", many: ["/x", "/y"], other: 1 }, "/srv");
    expect(args).toEqual({ p: "/srv/b", u: "http://example.com/x", many: ["/x", "/y"], other: 1 });
    expect(needs).toEqual([
      { action: "fs.read", path: "/srv/b" },
      { action: "http.request", method: "GET", url: "http://example.com/x" },
      { action: "fs.list", path: "/x" },
      { action: "fs.list", path: "/y" },
    ]);
    expect(() => constrainArguments("t", { u: "http.GET" }, { u: "not a url" }, "/")).toThrow(InvalidInput);
    expect(() => constrainArguments("t", { p: "fs.read" }, { p: "rel" }, undefined)).toThrow(/needs the upstream's root/);
    expect(() => constrainArguments("t", { p: "fs.read" }, { p: "a\0b" }, "/")).toThrow(/NUL/);
    expect(() => constrainArguments("t", { p: "fs.read" }, { p: [1] }, "/")).toThrow(/must be a string or an array of strings/);
  });
});
