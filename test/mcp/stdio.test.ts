import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { makeFixture, textOf, type Fixture } from "./support.ts";

/* `agentcap serve --stdio` as a real child process, driven by the SDK's stdio client. */

const bin = path.resolve("bin/agentcap.js");
let fixture: Fixture;
let minting: Gateway;

beforeAll(async () => {
  fixture = makeFixture();
  // An in-process gateway over the same key and stores, used here only to mint and revoke.
  minting = await openGateway(await loadGatewayConfig(fixture.configFile));
});

afterAll(async () => {
  await minting.close();
  fixture.cleanup();
});

async function connect(env: Record<string, string>, extra: string[] = []): Promise<Client> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [bin, "serve", "--stdio", "--config", fixture.configFile, ...extra], env: { PATH: process.env.PATH ?? "", ...env }, stderr: "pipe" });
  const client = new Client({ name: "agentcap-test", version: "0.0.0" });
  await client.connect(transport);
  return client;
}

describe("agentcap serve --stdio", () => {
  it("binds the session to the token from AGENTCAP_TOKEN: lists and calls under it", async () => {
    const client = await connect({ AGENTCAP_TOKEN: minting.issueToken("bob") });
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["list_files"]);
      expect(textOf(await client.callTool({ name: "list_files", arguments: { path: "public" } }))).toContain("hello.txt");
      expect(textOf(await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }))).toMatch(/^ERR_CAPABILITY_DENIED/);
    } finally {
      await client.close();
    }
  });

  it("takes the token from --token, and sees a revocation made by another process on the next call", async () => {
    const token = minting.issueToken("alice");
    const client = await connect({}, ["--token", token]);
    try {
      expect(textOf(await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }))).toContain("hello from the workspace");
      await minting.revoke(token);
      // The SQLite store notices another connection's write within its refresh interval; poll up to a generous deadline.
      const deadline = Date.now() + 10_000;
      let text = "";
      while (Date.now() < deadline) {
        text = textOf(await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }));
        if (text.startsWith("ERR_REVOKED")) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(text).toMatch(/^ERR_REVOKED/);
    } finally {
      await client.close();
    }
  });

  it("exits with a clear error when the token is missing or bad", async () => {
    const run = (env: Record<string, string>) =>
      promisify(execFile)(process.execPath, [bin, "serve", "--stdio", "--config", fixture.configFile], { env: { PATH: process.env.PATH ?? "", ...env } }).then(
        () => ({ code: 0, stderr: "" }),
        (e: unknown) => ({ code: (e as { code: number }).code, stderr: (e as { stderr: string }).stderr }),
      );
    const missing = await run({});
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("serve --stdio needs the session's token: pass --token or set AGENTCAP_TOKEN");
    const bad = await run({ AGENTCAP_TOKEN: "garbage" });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("ERR_INVALID_TOKEN");
  });
});
