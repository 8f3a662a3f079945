import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
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
        admin: { revoke: [{ target: "principal" }, { target: "session" }] },
      },
      principals: { alice: { roles: ["reader"] }, bob: { roles: ["lister"] }, carol: { roles: ["reader"] }, admin: { roles: ["admin"] } },
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

/** What a raw connection received before the server closed it. */
export interface RawExchange {
  /** Everything the server sent, as latin1 text. */
  readonly answer: string;
  /** The status line, or "" when the server sent nothing. */
  readonly status: string;
}

/**
 * Opens a connection to `url`'s host and port, writes `first`, then writes
 * `drip` every 50 ms until the server closes the connection, and resolves
 * with what it answered. Only a server that closes the connection lets this
 * resolve, so a test that waits on it shows the server ends the exchange.
 */
export function rawExchange(url: string, first: string, drip: string | null = null): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let answer = "";
    const socket = connect(Number(port), hostname, () => {
      if (first !== "") socket.write(first);
    });
    const timer = drip === null ? null : setInterval(() => {
      if (socket.writable) socket.write(drip);
    }, 50);
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => (answer += chunk));
    // A reset after the answer is the server closing on a client that is still sending: the answer is what counts.
    socket.on("error", () => undefined);
    socket.on("close", () => {
      if (timer !== null) clearInterval(timer);
      resolve({ answer, status: answer.split("\r\n")[0] ?? "" });
    });
  });
}
