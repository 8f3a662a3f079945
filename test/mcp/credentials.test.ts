import { once } from "node:events";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { Command } from "commander";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerCredentialsCommand } from "../../src/cli/credentials-command.ts";
import { operator } from "../../src/cli/gateway-stores.ts";
import { InvalidInput, UnknownPrincipal, VaultKeyMismatch, VaultKeyMissing } from "../../src/kernel/errors.ts";
import { loadGatewayConfig, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { databaseUrl, postgresSkipReason } from "../support/postgres.ts";
import { makeFixture, type Fixture } from "./support.ts";

/*
 * A gateway with a vault: `agentcap credentials` stores each user's own
 * token for an origin, and the fetch tool's HTTP resource sends it there
 * for that user only. What the model is shown (the tool's result or error)
 * and the audit log are searched for the secret.
 */

const ALICE = "Bearer alice-upstream-token-4c1f9e27";
const BOB = "Bearer bob-upstream-token-d82a0b13";
const SECRETS = ["alice-upstream-token-4c1f9e27", "bob-upstream-token-d82a0b13"];

let fixture: Fixture;
let server: Server;
let origin = "";
const seen: IncomingHttpHeaders[] = [];
/** Each JSON-RPC message the upstream received, with the request's Authorization header (null when none). */
const upstreamSeen: { readonly method: string; readonly authorization: string | null }[] = [];

/** A stateless MCP server (one per request), as an upstream behind the gateway: its tool answers without knowing who asked. */
async function serveMcp(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = chunks.length === 0 ? undefined : (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { method?: string });
  upstreamSeen.push({ method: body?.method ?? req.method ?? "", authorization: req.headers.authorization ?? null });
  const mcp = new McpServer({ name: "api-upstream", version: "0.0.0" });
  mcp.registerTool("whoami", { description: "Says who the upstream thinks is calling." }, () => ({ content: [{ type: "text", text: "you are whoever your token says" }] }));
  const transport = new StreamableHTTPServerTransport({});
  res.on("close", () => {
    void transport.close();
    void mcp.close();
  });
  await mcp.connect(transport);
  await transport.handleRequest(req, res, body);
}

async function agentcap(...args: string[]): Promise<string> {
  let out = "";
  const program = new Command("agentcap").exitOverride();
  registerCredentialsCommand(program, { out: (line) => (out += `${line}\n`) });
  await program.parseAsync(args, { from: "user" });
  return out;
}

function auditBytes(): string {
  return ["audit.db", "audit.db-wal"].map((f) => path.join(fixture.dir, "state", f)).filter((f) => existsSync(f)).map((f) => readFileSync(f, "latin1")).join("\n");
}

function expectNoSecret(value: unknown): void {
  const shown = typeof value === "string" ? value : JSON.stringify(value, (_k, v: unknown) => (v instanceof Error ? { message: v.message, stack: v.stack, own: Object.fromEntries(Object.entries(v)) } : v));
  for (const s of SECRETS) expect(shown).not.toContain(s);
}

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === "/mcp") {
      void serveMcp(req, res);
      return;
    }
    seen.push(req.headers);
    res.end(`you asked for ${req.url ?? ""}`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.close();
  await once(server, "close");
});

const ENGINES = [
  { name: "SQLite", skip: false, tokenStore: () => ({ kind: "sqlite", path: "state/tokens.db" }) },
  { name: "Postgres", skip: postgresSkipReason !== null, tokenStore: () => ({ kind: "postgres", url: databaseUrl, schema: `agentcap_cred_${Math.random().toString(16).slice(2, 10)}` }) },
];

for (const engine of ENGINES) {
  describe.skipIf(engine.skip)(`agentcap credentials and the gateway's vault (token store: ${engine.name})`, () => {
    beforeAll(() => {
      fixture = makeFixture({
        tokenStore: engine.tokenStore(),
        credentials: { keyFile: "secrets/vault.key" },
        tools: { http: { timeoutMs: 5000 } },
        upstreams: [{ name: "api", url: `${origin}/mcp`, credentials: "per-principal", tools: { whoami: {} } }],
        policy: {
          roles: { caller: { tools: ["fetch_url", "api__whoami"], http: [{ origin, methods: ["GET"], allowPrivateNetwork: true }] } },
          principals: { alice: { roles: ["caller"] }, bob: { roles: ["caller"] }, carol: { roles: ["caller"] } },
        },
      });
      writeFileSync(path.join(fixture.dir, "alice.token"), `${ALICE}\n`);
      writeFileSync(path.join(fixture.dir, "bob.token"), BOB);
    });

    afterAll(async () => {
      const store = fixture.config.tokenStore as { kind: string; schema?: string };
      if (store.kind === "postgres") {
        const client = new pg.Client({ connectionString: databaseUrl });
        await client.connect();
        await client.query(`DROP SCHEMA IF EXISTS ${store.schema ?? ""} CASCADE`);
        await client.end();
      }
      fixture.cleanup();
    });

    it("without the key, neither the command nor the gateway opens the vault (VaultKeyMissing)", async () => {
      await expect(agentcap("credentials", "set", "--config", fixture.configFile, "--principal", "alice", "--origin", origin, "--value", `@${path.join(fixture.dir, "alice.token")}`)).rejects.toThrow(VaultKeyMissing);
      await expect(openGateway(await loadGatewayConfig(fixture.configFile))).rejects.toThrow(/agentcap credentials keygen --out .*vault\.key/);
    });

    it("keygen writes a key readable by its owner only, and never replaces one", async () => {
      const keyFile = path.join(fixture.dir, "secrets", "vault.key");
      expect(await agentcap("credentials", "keygen", "--out", keyFile)).toMatch(/wrote a vault key/);
      expect(statSync(keyFile).mode & 0o777).toBe(0o600);
      await expect(agentcap("credentials", "keygen", "--out", keyFile)).rejects.toThrow(InvalidInput);
    });

    it("set takes the value from a file only, and refuses a principal the configuration does not know", async () => {
      await expect(agentcap("credentials", "set", "--config", fixture.configFile, "--principal", "alice", "--origin", origin, "--value", ALICE)).rejects.toThrow(/--value takes @file/);
      const unknown = agentcap("credentials", "set", "--config", fixture.configFile, "--principal", "alcie", "--origin", origin, "--value", `@${path.join(fixture.dir, "alice.token")}`);
      await expect(unknown).rejects.toThrow(UnknownPrincipal);
      expect(await agentcap("credentials", "set", "--config", fixture.configFile, "--principal", "alice", "--origin", origin, "--value", `@${path.join(fixture.dir, "alice.token")}`)).toBe(
        `stored the credential of alice for ${origin}\n`,
      );
      await agentcap("credentials", "set", "--config", fixture.configFile, "--principal", "bob", "--origin", `${origin}/`, "--value", `@${path.join(fixture.dir, "bob.token")}`);
      const listed = await agentcap("credentials", "list", "--config", fixture.configFile);
      expect(listed).toMatch(new RegExp(`^alice\\t${origin}\\tkey [0-9a-f]{16}\\t`, "m"));
      expect(listed).toMatch(/^bob\t/m);
      expectNoSecret(listed);
    });

    it("a per-principal upstream gets each caller's own credential on every request of a connection of that caller's own; the model's result never holds it", async () => {
      upstreamSeen.length = 0;
      const gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
      try {
        // The gateway opened without asking the upstream anything: it lists the upstream's tools per caller, with that caller's credential.
        expect(upstreamSeen).toEqual([]);
        const as = async (principal: string) => {
          upstreamSeen.length = 0;
          const cap = await gateway.authenticate(gateway.issueToken(principal), { fresh: true });
          const result = await gateway.dispatcher.call("api__whoami", {}, cap);
          expectNoSecret(result);
          expect(JSON.stringify(result)).toMatch(/whoever your token says/);
          // The call, and the initialize and tool listing of the caller's connection when this call opened it.
          return upstreamSeen.filter((m) => m.method === "tools/call" || m.method === "tools/list" || m.method === "initialize").map((m) => `${m.method} ${m.authorization ?? "none"}`);
        };
        expect(await as("alice")).toEqual([`initialize ${ALICE}`, `tools/list ${ALICE}`, `tools/call ${ALICE}`]);
        expect(await as("bob")).toEqual([`initialize ${BOB}`, `tools/list ${BOB}`, `tools/call ${BOB}`]);
        expect(await as("carol")).toEqual(["initialize none", "tools/list none", "tools/call none"]);
        expect(await as("alice")).toEqual([`tools/call ${ALICE}`]);
      } finally {
        await gateway.close();
      }
    });

    it("the fetch tool sends each caller's own credential; the model's result and the audit log never hold it", async () => {
      const gateway: Gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
      try {
        const alice = await gateway.authenticate(gateway.issueToken("alice"), { fresh: true });
        const result = await gateway.dispatcher.call("fetch_url", { url: `${origin}/items` }, alice);
        expect(seen.at(-1)?.authorization).toBe(ALICE);
        expect(JSON.stringify(result)).toMatch(/you asked for \/items/);
        expectNoSecret(result);
        const bob = await gateway.authenticate(gateway.issueToken("bob"), { fresh: true });
        await gateway.dispatcher.call("fetch_url", { url: `${origin}/items`, headers: { authorization: "Bearer chosen-by-the-model" } }, bob);
        expect(seen.at(-1)?.authorization).toBe(BOB);
        const carol = await gateway.authenticate(gateway.issueToken("carol"), { fresh: true });
        await gateway.dispatcher.call("fetch_url", { url: `${origin}/items` }, carol);
        expect(seen.at(-1)?.authorization).toBeUndefined();

        await gateway.tokenStore.revoke({ principal: "alice" }, { reason: "left", by: operator(gateway.tokenStore, "ops") });
        const before = seen.length;
        const refused = await gateway.dispatcher.call("fetch_url", { url: `${origin}/items` }, alice).catch((e: unknown) => e);
        expect(refused).toMatchObject({ code: "ERR_REVOKED" });
        expect(seen.length).toBe(before);
        expectNoSecret(refused);
        expectNoSecret(auditBytes());
      } finally {
        await gateway.close();
      }
    });

    it("with another key, a call fails with VaultKeyMismatch, which names no secret or ciphertext", async () => {
      const keyFile = path.join(fixture.dir, "secrets", "vault.key");
      const original = readFileSync(keyFile, "utf8");
      writeFileSync(keyFile, `${Buffer.alloc(32, 7).toString("base64")}\n`);
      const gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
      try {
        const bob = await gateway.authenticate(gateway.issueToken("bob"), { fresh: true });
        const before = seen.length;
        const error = await gateway.dispatcher.call("fetch_url", { url: `${origin}/items` }, bob).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(VaultKeyMismatch);
        expect((error as Error).message).toMatch(/the vault key does not match/);
        expect(seen.length).toBe(before);
        expectNoSecret(error);
      } finally {
        await gateway.close();
        writeFileSync(keyFile, original);
      }
    });

    it("remove deletes a credential, and says when there is none", async () => {
      expect(await agentcap("credentials", "remove", "--config", fixture.configFile, "--principal", "bob", "--origin", origin)).toBe(`removed the credential of bob for ${origin}\n`);
      await expect(agentcap("credentials", "remove", "--config", fixture.configFile, "--principal", "bob", "--origin", origin)).rejects.toThrow(/no credential of bob/);
    });
  });
}

describe("the credentials section of a gateway configuration", () => {
  const base = { issuer: "t", keys: { file: "k.json" }, tokenStore: { kind: "sqlite", path: "t.db" }, audit: { kind: "sqlite", path: "a.db" }, policy: { roles: {}, principals: {} } };
  it.each([
    ["both a key file and a variable", { keyFile: "v.key", keyFromEnv: "VAULT_KEY" }, /keyFile or keyFromEnv, exactly one/],
    ["neither", {}, /keyFile or keyFromEnv, exactly one/],
    ["a variable name that is not one", { keyFromEnv: "NOT A NAME" }, /credentials\.keyFromEnv: must be an environment variable name/],
    ["an unknown field", { keyFile: "v.key", value: "Bearer x" }, /credentials: Unrecognized key/],
  ])("refuses %s", (_what, credentials, message) => {
    expect(() => parseGatewayConfig({ ...base, credentials }, "/etc/agentcap")).toThrow(message);
  });

  it("resolves the key file against the configuration's folder, or names the variable", () => {
    expect(parseGatewayConfig({ ...base, credentials: { keyFile: "secrets/v.key" } }, "/etc/agentcap").credentials).toEqual({ key: { file: "/etc/agentcap/secrets/v.key" } });
    expect(parseGatewayConfig({ ...base, credentials: { keyFromEnv: "VAULT_KEY" } }, "/etc/agentcap").credentials).toEqual({ key: { fromEnv: "VAULT_KEY" } });
  });
});
