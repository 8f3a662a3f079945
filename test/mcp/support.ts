import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { generateKeyPair } from "../../src/token/biscuit.ts";

/*
 * A gateway configuration in a fresh folder: a workspace with a public and a
 * private part, a key file, SQLite stores, and two principals: alice reads
 * and lists the public part, bob only lists it.
 */

/** A temporary gateway setup; `cleanup` removes the folder. */
export interface Fixture {
  readonly dir: string;
  readonly workspace: string;
  readonly configFile: string;
  readonly config: Record<string, unknown>;
  cleanup(): void;
}

/** Writes the configuration (with `overrides` merged at the top level) and the files it names. */
export function makeFixture(overrides: Record<string, unknown> = {}): Fixture {
  const dir = mkdtempSync(path.join(tmpdir(), "agentcap-mcp-"));
  const workspace = path.join(dir, "workspace");
  mkdirSync(path.join(workspace, "public"), { recursive: true });
  mkdirSync(path.join(workspace, "private"), { recursive: true });
  writeFileSync(path.join(workspace, "public", "hello.txt"), "hello from the workspace\n");
  writeFileSync(path.join(workspace, "private", "secret.txt"), "top secret\n");
  writeFileSync(path.join(dir, "keys.json"), JSON.stringify({ keyId: 1, ...generateKeyPair() }));
  const config: Record<string, unknown> = {
    issuer: "test-gateway",
    keys: { file: "keys.json" },
    tokenStore: { kind: "sqlite", path: "state/tokens.db" },
    audit: { kind: "sqlite", path: "state/audit.db" },
    policy: {
      roles: {
        reader: { tools: ["read_file", "list_files"], fs: [{ path: path.join(workspace, "public"), ops: ["read", "list"] }] },
        lister: { tools: ["list_files"], fs: [{ path: path.join(workspace, "public"), ops: ["list"] }] },
      },
      principals: { alice: { roles: ["reader"] }, bob: { roles: ["lister"] } },
    },
    tools: { files: { root: "workspace" } },
    ...overrides,
  };
  const configFile = path.join(dir, "agentcap.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  return { dir, workspace, configFile, config, cleanup: () => { rmSync(dir, { recursive: true, force: true }); } };
}

/** An SDK client connected over Streamable HTTP with `token` as its bearer. */
export async function httpClient(url: string, token: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name: "agentcap-test", version: "0.0.0" });
  await client.connect(transport);
  return { client, transport };
}

/** The text of a tool result's first content item. */
export function textOf(result: unknown): string {
  const content = (result as CallToolResult).content[0];
  return content?.type === "text" ? content.text : "";
}
