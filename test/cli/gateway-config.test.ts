import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseSignerKey } from "../../src/audit/checkpoint.ts";
import { registerAuditCommand } from "../../src/cli/audit-command.ts";
import { registerRevokeCommand } from "../../src/cli/revoke-command.ts";
import { registerTokenCommand } from "../../src/cli/token-command.ts";
import { InvalidInput } from "../../src/kernel/errors.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "../mcp/support.ts";

/*
 * The `token`, `revoke` and `audit` commands with `--config`: they act on the
 * stores of the gateway that configuration describes, while it runs, and
 * the gateway sees what they did. `--token @file` is taken by every command
 * that takes a token.
 */

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;

beforeAll(async () => {
  fixture = makeFixture({ audit: { kind: "sqlite", path: "state/audit.db", checkpoints: { keyFile: "state/checkpoint.key", createKeyIfMissing: true, everyEntries: 1 } } });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

/** Runs `agentcap …` in-process, as the command line does; what it printed, and the exit code it set. */
async function agentcap(...args: string[]): Promise<{ out: string; code: number }> {
  let out = "";
  let code = 0;
  const program = new Command("agentcap").exitOverride();
  const io = { out: (text: string) => (out += text.endsWith("\n") ? text : `${text}\n`), setExitCode: (c: number) => (code = c) };
  registerTokenCommand(program, io);
  registerAuditCommand(program, io);
  registerRevokeCommand(program, io);
  await program.parseAsync(args, { from: "user" });
  return { out, code };
}

/** Writes `text` to a file of the fixture's folder and gives it as `@file`. */
function at(name: string, text: string): string {
  const file = path.join(fixture.dir, name);
  writeFileSync(file, `${text}\n`);
  return `@${file}`;
}

const config = () => ["--config", fixture.configFile];

describe("agentcap token --config", () => {
  it("token revoke --config --token @file: the running gateway refuses the token, in its open session and in a new one", async () => {
    const token = gateway.issueToken("alice");
    const { client } = await httpClient(http.url, token);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["read_file", "list_files"]);
    expect((await agentcap("token", "revoke", ...config(), "--token", at("revoked.token", token), "--reason", "laptop lost", "--by", "ops:sam")).out).toBe("revoked\n");
    await vi.waitFor(async () => {
      await expect(client.listTools()).rejects.toThrow(/401|invalid_token|revoked/i);
    }, { timeout: 10_000 });
    await expect(httpClient(http.url, token)).rejects.toThrow(/401|revoked/i);
    await client.close();
    // Recorded in the gateway's own audit log, which audit query --config reads.
    expect((await agentcap("audit", "query", ...config(), "--revoked")).out).toMatch(/ops:sam .*revoke\s+\S+ \S+\s+revoked .*: laptop lost/);
  });

  it("token mint --config mints as the gateway's policy grants, with its key and store: the running gateway serves it", async () => {
    const { out } = await agentcap("token", "mint", ...config(), "--principal", "bob");
    const { client, transport } = await httpClient(http.url, out.trim());
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["list_files"]);
      expect(textOf(await client.callTool({ name: "list_files", arguments: { path: "public" } }))).toContain("hello.txt");
    } finally {
      await transport.terminateSession();
      await client.close();
    }
  });

  it("token inspect, attenuate and verify --config use the gateway's keys and store, each taking --token @file", async () => {
    const token = at("alice.token", gateway.issueToken("alice"));
    expect((await agentcap("token", "inspect", ...config(), "--token", token)).out).toMatch(/^block 0: root link \S+\n {2}minted for alice by test-gateway \(key id 1\)/);
    const narrow = path.join(fixture.dir, "narrow.json");
    writeFileSync(narrow, JSON.stringify({ tools: ["list_files"], fs: [{ path: path.join(fixture.workspace, "public"), ops: ["list"] }] }));
    const child = (await agentcap("token", "attenuate", ...config(), "--token", token, "--grant", narrow)).out.trim();
    const request = path.join(fixture.dir, "request.json");
    writeFileSync(request, JSON.stringify({ action: "tool.call", tool: "read_file" }));
    expect(await agentcap("token", "verify", ...config(), "--token", token, "--request", request)).toEqual({ out: "allowed\n", code: 0 });
    const denied = await agentcap("token", "verify", ...config(), "--token", at("child.token", child), "--request", request);
    expect(denied.code).toBe(2);
    expect(denied.out).toMatch(/^denied by block 1 /);
  });

  it.each([
    ["attenuate", ["--grant", "grant.json"]],
    ["inspect", []],
    ["verify", ["--request", "request.json"]],
    ["revoke", []],
  ])("token %s --token @file names a file it cannot read", async (command, extra) => {
    writeFileSync(path.join(fixture.dir, "grant.json"), JSON.stringify({ tools: [] }));
    writeFileSync(path.join(fixture.dir, "request.json"), JSON.stringify({ action: "tool.call", tool: "read_file" }));
    extra = extra.map((a) => (a.endsWith(".json") ? path.join(fixture.dir, a) : a));
    const missing = path.join(fixture.dir, "no-such.token");
    await expect(agentcap("token", command, ...config(), "--token", `@${missing}`, ...extra)).rejects.toThrow(`cannot read the token file ${JSON.stringify(missing)}`);
  });

  it("names what is wrong: --config with --store, no keys at all, mint without --config or a key and grant", async () => {
    await expect(agentcap("token", "verify", ...config(), "--store", "x.db", "--token", "t", "--request", "r.json")).rejects.toThrow(InvalidInput);
    await expect(agentcap("token", "inspect", "--token", "t")).rejects.toThrow(/give --public-keys <file>, or --config <gateway config>/);
    await expect(agentcap("token", "mint", "--principal", "a")).rejects.toThrow(/mint needs --key and --grant, or --config/);
    await expect(agentcap("audit", "query", ...config(), "--store", "x.db")).rejects.toThrow(/--config names the gateway's audit log/);
  });
});

describe("agentcap audit --config", () => {
  it("verifies the running gateway's log against its signed checkpoints, proves an event and exports the log, all from the configuration", async () => {
    const { client, transport } = await httpClient(http.url, gateway.issueToken("carol"));
    await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } });
    await transport.terminateSession();
    await client.close();
    await vi.waitFor(() => { expect(existsSync(path.join(fixture.dir, "state/audit.db.checkpoints"))).toBe(true); });

    const verified = await agentcap("audit", "verify", ...config(), "--json");
    expect(verified.code).toBe(0);
    expect(JSON.parse(verified.out)).toMatchObject({ ok: true });
    expect((JSON.parse(verified.out) as { checkpoints?: { verified?: number } }).checkpoints?.verified ?? 1).toBeGreaterThan(0);

    const events = (await agentcap("audit", "query", ...config(), "--principal", "carol", "--tool", "read_file", "--format", "jsonl")).out.trim().split("\n");
    const id = (JSON.parse(events[0] ?? "{}") as { event: { id: string } }).event.id;
    // Proofs are against the latest checkpoint covering the event: wait for one past it.
    await vi.waitFor(async () => {
      const proof = await agentcap("audit", "prove", id, ...config());
      expect(JSON.parse(proof.out)).toHaveProperty("checkpoint");
    }, { timeout: 10_000 });

    const exported = path.join(fixture.dir, "export.jsonl");
    await agentcap("audit", "export", ...config(), "--out", exported);
    expect(existsSync(exported)).toBe(true);
  });

  it("prunes the running gateway's log by age, and the log still verifies and exports while the gateway keeps writing", async () => {
    const call = async () => {
      const { client, transport } = await httpClient(http.url, gateway.issueToken("carol"));
      await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } });
      await transport.terminateSession();
      await client.close();
    };
    await call();
    const pruned = await agentcap("audit", "prune", ...config(), "--older-than", new Date().toISOString());
    expect(pruned.out).toMatch(/^pruned \d+ entries \(1 to \d+\)/);
    await expect(agentcap("audit", "prune", ...config(), "--store", "x.db", "--older-than", "1d")).rejects.toThrow(/--config names the gateway's audit log/);

    await call();
    const verified = await agentcap("audit", "verify", ...config());
    expect(verified.code).toBe(0);
    expect(verified.out).toMatch(/^ok: .*\n(.*\n)*pruned by retention: entries 1 to \d+ .*the signed retention checkpoint anchors what remains/);
    expect((await agentcap("audit", "query", ...config())).out).toMatch(/\(entries 1 to \d+, older than .*, were pruned by retention on /);

    const exported = path.join(fixture.dir, "pruned-export.jsonl");
    await agentcap("audit", "export", ...config(), "--out", exported);
    const publicKey = parseSignerKey(readFileSync(path.join(fixture.dir, "state/checkpoint.key"), "utf8")).verifierKey;
    const checked = await agentcap("audit", "verify-export", exported, "--public-key", publicKey);
    expect(checked.code).toBe(0);
    expect(checked.out).toMatch(/^ok: entries (\d+) to \d+ .*\nentries 1 to \d+ were pruned by retention/);
  });
});
