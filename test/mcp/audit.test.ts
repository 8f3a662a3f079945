import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseSignerKey, splitNotes } from "../../src/audit/checkpoint.ts";
import { verifyProof } from "../../src/audit/proof-verifier.ts";
import { loadGatewayConfig, parseGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { appendBlocks } from "../../src/token/biscuit.ts";
import { compileBlock, encodeBlock, type BlockData } from "../../src/token/block.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * The audit log as the gateway keeps it: tokens crafted to make an action
 * unrecordable or to file it under another session do nothing and leave
 * nothing; the gateway names every session itself; a guarded upstream's
 * confined arguments are recorded as resource events before it is called;
 * and its signed checkpoints let anyone prove an event with the public key.
 */

const serverScript = path.resolve("node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
let fixture: Fixture;
let upstreamRoot: string;
let gateway: Gateway;
let http: HttpGateway;

beforeAll(async () => {
  upstreamRoot = mkdtempSync(path.join(tmpdir(), "agentcap-audit-upstream-"));
  mkdirSync(path.join(upstreamRoot, "granted"));
  fixture = makeFixture({
    audit: { kind: "sqlite", path: "state/audit.db", checkpoints: { keyFile: "secrets/audit.key", createKeyIfMissing: true, everyEntries: 1 } },
    policy: {
      roles: {
        writer: { tools: ["write_file", "read_file", "fs__write_file"], fs: [{ path: "workspace/public", ops: ["read", "write"] }, { path: path.join(upstreamRoot, "granted"), ops: ["write"] }] },
      },
      principals: { alice: { roles: ["writer"] } },
    },
    upstreams: [{ name: "fs", command: process.execPath, args: [serverScript, upstreamRoot], root: upstreamRoot, tools: { write_file: { path: "fs.write" } } }],
  });
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 });
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
  rmSync(upstreamRoot, { recursive: true, force: true });
});

const publicKeys = () => JSON.parse(readFileSync(path.join(fixture.dir, "keys.json"), "utf8")) as { keyId: number; publicKey: string };

/** `token` with one more block, appended offline with nothing but the public key, as any holder could. */
function withBlock(token: string, data: BlockData): string {
  const json = encodeBlock(data);
  const { keyId, publicKey } = publicKeys();
  return appendBlocks(token, new Map([[keyId, publicKey]]), [compileBlock(json, JSON.parse(json) as BlockData).code]);
}

async function call(token: string, name: string, args: Record<string, unknown>): Promise<{ result: CallToolResult; sessionId: string | undefined }> {
  const { client, transport } = await httpClient(http.url, token);
  try {
    return { result: (await client.callTool({ name, arguments: args })) as CallToolResult, sessionId: transport.sessionId };
  } finally {
    await client.close();
  }
}

describe("tokens crafted to act unrecorded, or under another session", () => {
  const rootIdOf = async (token: string) => (await gateway.authenticate(token)).lineage[0]?.id ?? "";

  it.each<[string, (rootId: string) => BlockData]>([
    ["a block repeating the root's link id", (rootId) => ({ v: 1, kind: "narrow", id: rootId, grant: { tools: ["write_file"] } })],
    ["a block labelled with an empty session", () => ({ v: 1, kind: "revocable", id: "crafted-1", labels: { session: "" } })],
    ["a block labelled with another user's session", () => ({ v: 1, kind: "revocable", id: "crafted-2", labels: { session: "sess-of-alice-42" } })],
    ["a block labelled with an empty label", () => ({ v: 1, kind: "revocable", id: "crafted-3", labels: { purpose: "" } })],
  ])("%s is refused when read: nothing is written, and nothing is logged", async (_name, block) => {
    const token = gateway.issueToken("alice");
    const before = (await gateway.audit.query({ limit: 10_000 })).length;
    const crafted = withBlock(token, block(await rootIdOf(token)));
    await expect(call(crafted, "write_file", { path: "public/crafted.txt", content: "PWNED" })).rejects.toThrow(/ERR_INVALID_TOKEN/);
    expect(existsSync(path.join(fixture.workspace, "public", "crafted.txt"))).toBe(false);
    expect(await gateway.audit.query({ limit: 10_000 })).toHaveLength(before);
  });
});

describe("sessions the gateway names itself", () => {
  it("files every event of an MCP session under the session id the gateway gave it", async () => {
    const { result, sessionId } = await call(gateway.issueToken("alice"), "write_file", { path: "public/labelled.txt", content: "hi" });
    expect(result.isError).not.toBe(true);
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const events = await gateway.audit.query({ sessionId: sessionId ?? "" });
    expect(events.map((r) => [r.event.kind, r.event.request.action])).toEqual([
      ["tool", "tool.call"],
      ["resource", "fs.write"],
    ]);
    expect(events.every((r) => r.event.outcome?.ok === true)).toBe(true);
  });
});

describe("a guarded upstream", () => {
  it("records one resource event per confined argument, before the upstream acts", async () => {
    const target = path.join(upstreamRoot, "granted", "up.txt");
    const { result } = await call(gateway.issueToken("alice"), "fs__write_file", { path: target, content: "from upstream" });
    expect(textOf(result)).not.toMatch(/^ERR_/);
    expect(readFileSync(target, "utf8")).toBe("from upstream");
    const touched = await gateway.audit.query({ resourcePrefix: `${path.join(upstreamRoot, "granted")}/` });
    expect(touched.map((r) => [r.event.kind, r.event.tool, r.event.request.action, r.event.outcome?.ok])).toEqual([["resource", "fs__write_file", "fs.write", true]]);
    const [toolCall] = await gateway.audit.query({ tool: "fs__write_file", action: "tool.call" });
    // The tool's intent, then the argument's, both before the upstream was called; completed in the opposite order.
    expect(toolCall?.seq).toBeLessThan(touched[0]?.seq ?? 0);
    expect(touched[0]?.outcomeSeq).toBeLessThan(toolCall?.outcomeSeq ?? 0);
  });
});

describe("signed checkpoints beside the log", () => {
  it("proves a gateway event to anyone holding the public key", async () => {
    await gateway.audit.checkpoint();
    const [event] = await gateway.audit.query({ action: "fs.write", limit: 1 });
    const notes = splitNotes(readFileSync(path.join(fixture.dir, "state", "audit.db.checkpoints"), "utf8"));
    expect(notes.length).toBeGreaterThan(0);
    const proof = await gateway.audit.prove(event?.event.id ?? "", { checkpoints: notes });
    const keyFile = readFileSync(path.join(fixture.dir, "secrets", "audit.key"), "utf8");
    // The verifier key is public: derived here from the signing key file as `agentcap audit keygen` would have printed it.
    const verifierKey = parseSignerKey(keyFile).verifierKey;
    const verified = verifyProof(JSON.parse(JSON.stringify(proof)), verifierKey);
    if (!verified.ok) throw new Error(verified.reason);
    expect(verified.value.entries.map((e) => (e.body as { entry: string }).entry)).toEqual(["intent", "outcome"]);
  });
});

describe("audit checkpoints in the gateway configuration", () => {
  const base = {
    issuer: "t",
    keys: { file: "keys.json" },
    tokenStore: { kind: "sqlite", path: "tokens.db" },
    policy: { roles: { r: { tools: ["read_file"] } }, principals: { alice: { roles: ["r"] } } },
  };

  it("resolves the key file and puts the checkpoints beside a SQLite log by default", () => {
    const c = parseGatewayConfig({ ...base, audit: { kind: "sqlite", path: "state/audit.db", checkpoints: { keyFile: "secrets/audit.key", everySeconds: 5 } } }, "/srv/gw");
    expect(c.audit.checkpoints).toEqual({ keyFile: "/srv/gw/secrets/audit.key", createKeyIfMissing: false, file: "/srv/gw/state/audit.db.checkpoints", everySeconds: 5 });
  });

  it.each<[string, unknown, RegExp]>([
    ["a Postgres log without a checkpoint file", { kind: "postgres", url: "postgres://h/db", checkpoints: { keyFile: "k" } }, /audit\.checkpoints\.file: name the file/],
    ["an unknown checkpoint option", { kind: "sqlite", path: "a.db", checkpoints: { keyFile: "k", every: 3 } }, /every/],
    ["a zero entry count", { kind: "sqlite", path: "a.db", checkpoints: { keyFile: "k", everyEntries: 0 } }, /everyEntries/],
  ])("refuses %s", (_what, audit, message) => {
    expect(() => parseGatewayConfig({ ...base, audit }, "/srv/gw")).toThrow(message);
  });

  it("refuses to start without the key file unless told to create it", async () => {
    const config = parseGatewayConfig(
      { ...base, keys: { file: path.join(fixture.dir, "keys.json") }, audit: { kind: "sqlite", path: ":memory:", checkpoints: { keyFile: "missing.key", file: "cp" } } },
      fixture.dir,
    );
    await expect(openGateway(config)).rejects.toThrow(/audit checkpoint key file .*missing\.key does not exist; create it with `agentcap audit keygen/);
  });
});
