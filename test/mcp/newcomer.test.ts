import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { examplePort } from "../../examples/mcp-gateway.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { makeFixture, type Fixture } from "./support.ts";

/*
 * What a newcomer meets first: the README's client configurations, run as
 * written (only the port, the token and the example's files swapped for the
 * test's), the port options of npm start, and a busy port.
 */

const root = path.resolve(".");
const README = readFileSync(path.join(root, "README.md"), "utf8");
const README_URL = "http://127.0.0.1:3333/mcp";

/** The fenced block after `<!-- client: name -->` in the README. */
function snippet(name: string): string {
  const m = new RegExp(`<!-- client: ${name} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\\n\`\`\``).exec(README);
  if (m === null) throw new Error(`README has no client snippet ${name}`);
  return m[1] as string;
}

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let token: string;

beforeAll(async () => {
  fixture = makeFixture();
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  token = gateway.issueToken("alice");
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

describe("the README's client configurations", () => {
  it("the SDK client snippet lists the tools and ends its session", async () => {
    const code = snippet("sdk").replace(README_URL, http.url);
    expect(code).not.toContain("3333");
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", code], { cwd: root, env: { ...process.env, AGENTCAP_TOKEN: token } });
    expect(stdout.trim()).toBe("read_file list_files");
    expect(http.openSessions()).toBe(0);
  });

  it("both entries of the configuration file connect with the SDK client", async () => {
    const config = JSON.parse(snippet("config")) as { mcpServers: Record<string, { type: string; url?: string; headers?: Record<string, string>; command?: string; args?: string[] }> };
    const { agentcap: overHttp, "agentcap-stdio": overStdio } = config.mcpServers;
    expect(overHttp?.type).toBe("streamable-http");
    expect(overHttp?.url).toBe(README_URL);
    const headers = Object.fromEntries(Object.entries(overHttp?.headers ?? {}).map(([k, v]) => [k, v.replace(/<token[^>]*>/, token)]));
    const viaHttp = new Client({ name: "readme-http", version: "0" });
    const transport = new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers } });
    await viaHttp.connect(transport);
    expect((await viaHttp.listTools()).tools.map((t) => t.name)).toEqual(["read_file", "list_files"]);
    await transport.terminateSession();
    await viaHttp.close();

    expect(overStdio?.type).toBe("stdio");
    expect(overStdio?.command).toBe("node");
    const tokenFile = path.join(fixture.dir, "alice.token");
    writeFileSync(tokenFile, `${token}\n`);
    const args = (overStdio?.args ?? []).map((a) => (a === "examples/mcp/agentcap.json" ? fixture.configFile : a === "@.agentcap/example/alice.token" ? `@${tokenFile}` : a));
    expect(args).not.toContain("examples/mcp/agentcap.json");
    const viaStdio = new Client({ name: "readme-stdio", version: "0" });
    await viaStdio.connect(new StdioClientTransport({ command: process.execPath, args, cwd: root, env: { PATH: process.env.PATH ?? "" }, stderr: "pipe" }));
    try {
      expect((await viaStdio.listTools()).tools.map((t) => t.name)).toEqual(["read_file", "list_files"]);
    } finally {
      await viaStdio.close();
    }
  });
});

describe("the README's MCP Inspector command line", () => {
  it("connects as the Inspector's CLI sets its client up: Streamable HTTP, its headers and the bearer, then tools/list", async () => {
    const words = [...snippet("inspector").matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? "");
    expect(words.slice(0, 2)).toEqual(["npx", "@modelcontextprotocol/inspector"]);
    const after = (flag: string) => words[words.indexOf(flag) + 1];
    expect(after("--cli")).toBe(README_URL);
    expect(after("--transport")).toBe("http");
    expect(after("--method")).toBe("tools/list");
    const tokenFile = path.join(fixture.dir, "alice.token");
    writeFileSync(tokenFile, `${token}\n`);
    const header = (after("--header") ?? "").replace("$(cat .agentcap/example/alice.token)", readFileSync(tokenFile, "utf8").trim());
    const colon = header.indexOf(":");
    // The Inspector's CLI (cli/src/transport.ts) gives its Streamable HTTP transport these headers, then the --header ones.
    const headers = { Accept: "application/json, text/event-stream", "Content-Type": "application/json", [header.slice(0, colon).trim()]: header.slice(colon + 1).trim() };
    const client = new Client({ name: "inspector-cli", version: "0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers } }));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["read_file", "list_files"]);
    } finally {
      await client.close();
    }
  });
});

describe("npm start's port", () => {
  it("is --port N, else PORT, else the configuration's", () => {
    expect(examplePort(["--port", "4000"], { PORT: "5000" })).toBe(4000);
    expect(examplePort([], { PORT: "5000" })).toBe(5000);
    expect(examplePort([], {})).toBeUndefined();
    expect(() => examplePort(["--port", "http"], {})).toThrow(/the port must be a number from 0 to 65535, not "http"/);
    expect(() => examplePort(["--prot", "1"], {})).toThrow(InvalidInput);
  });

  it("in use is one clear error, not a stack trace", async () => {
    const port = Number(new URL(http.url).port);
    await expect(listenHttp(gateway, { host: "127.0.0.1", port })).rejects.toThrow(new InvalidInput(`cannot listen on 127.0.0.1:${port}: the port is in use (another gateway?); choose another port`));
  });
});
