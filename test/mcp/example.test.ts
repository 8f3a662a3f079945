import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Command } from "commander";
import { registerTokenCommand } from "../../src/cli/token-command.ts";
import { startExample, type ExampleHandle } from "../../examples/mcp-gateway.ts";
import { httpClient, textOf } from "./support.ts";

/* The `npm start` gateway, with its state in a folder of its own: two tenants, each sees only its rows. */

let state: string;
let handle: ExampleHandle;

beforeAll(async () => {
  state = mkdtempSync(path.join(tmpdir(), "agentcap-example-"));
  handle = await startExample({ stateDir: state, port: 0 });
});

afterAll(async () => {
  await handle.close();
  rmSync(state, { recursive: true, force: true });
});

const customers = { name: "db_query", arguments: { model: "Customer", fields: ["id", "name"] } };

describe("the example gateway", () => {
  it("creates its key, stores and shop database on first start, and mints a token for alice", () => {
    for (const f of ["keys.json", "tokens.db", "audit.db", "audit-checkpoint.key", "shop.db"]) expect(existsSync(path.join(state, f)), f).toBe(true);
    expect(handle.devToken).toMatch(/^[A-Za-z0-9_=-]{100,}$/);
    expect(handle.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  });

  it("writes alice's token and the gateway's public keys, as the token commands read them", async () => {
    expect(handle.tokenFile).toBe(path.join(state, "alice.token"));
    expect(handle.publicKeysFile).toBe(path.join(state, "public-keys.json"));
    expect(readFileSync(handle.tokenFile, "utf8")).toBe(`${handle.devToken}\n`);
    const lines: string[] = [];
    const program = new Command("agentcap").exitOverride();
    registerTokenCommand(program, { out: (text) => lines.push(text), setExitCode: () => undefined });
    await program.parseAsync(["token", "inspect", "--token", `@${handle.tokenFile}`, "--public-keys", handle.publicKeysFile], { from: "user" });
    expect(lines.join("\n")).toMatch(/^block 0: root link \S+\n {2}minted for alice by agentcap-example \(key id 1\)/);
  });

  it("shows alice her tools and only acme's customers; bob only globex's", async () => {
    const alice = await httpClient(handle.url, handle.devToken);
    const bob = await httpClient(handle.url, handle.gateway.issueToken("bob"));
    try {
      expect((await alice.client.listTools()).tools.map((t) => t.name).sort()).toEqual(["db_query", "list_files", "read_file", "write_file"]);
      expect((await bob.client.listTools()).tools.map((t) => t.name).sort()).toEqual(["db_query", "list_files", "read_file"]);
      expect(JSON.parse(textOf(await alice.client.callTool(customers)))).toEqual([
        { id: 1, name: "Ada Lovelace" },
        { id: 2, name: "Charles Babbage" },
      ]);
      expect(JSON.parse(textOf(await bob.client.callTool(customers)))).toEqual([
        { id: 3, name: "Grace Hopper" },
        { id: 4, name: "Alan Turing" },
      ]);
      const crossTenant = await alice.client.callTool({ name: "db_query", arguments: { model: "Order", fields: ["id"], where: { tenantId: "globex" } } });
      expect(textOf(crossTenant)).toMatch(/^ERR_CAPABILITY_DENIED/);
      expect(textOf(await alice.client.callTool({ name: "read_file", arguments: { path: "handbook.md" } }))).toContain("Support handbook");
      expect(textOf(await alice.client.callTool({ name: "write_file", arguments: { path: "handbook.md", content: "defaced" } }))).toMatch(/^ERR_CAPABILITY_DENIED/);
    } finally {
      await alice.client.close();
      await bob.client.close();
    }
  });
});
