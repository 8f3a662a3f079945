import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerApprovalsCommand } from "../../src/cli/approvals-command.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { makeFixture, textOf, type Fixture } from "./support.ts";

/*
 * A gateway whose policy makes alice's file reads wait for bob or carol;
 * approvers act with `agentcap approvals … --config`, which opens the
 * gateway's stores on its own connections, as another process would.
 */

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let hook: Server;
const posted: string[] = [];

beforeAll(async () => {
  hook = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      posted.push(body);
      res.end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  fixture = makeFixture({ approvals: { webhook: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/approvals` } });
  const policy = fixture.config.policy as { roles: Record<string, Record<string, unknown>> };
  policy.roles.reader = { ...policy.roles.reader, approval: [{ tools: ["read_file"], approvers: ["bob", "carol"], quorum: 1 }] };
  writeFileSync(fixture.configFile, JSON.stringify(fixture.config));
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  for (const who of ["alice", "bob", "carol"]) writeFileSync(path.join(fixture.dir, `${who}.token`), gateway.issueToken(who));
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  await new Promise((r) => hook.close(r));
  fixture.cleanup();
});

async function agentcap(...args: string[]): Promise<string> {
  let out = "";
  const program = new Command("agentcap").exitOverride();
  registerApprovalsCommand(program, { out: (line) => (out += `${line}\n`) });
  await program.parseAsync(args.includes("--config") ? args : [...args, "--config", fixture.configFile], { from: "user" });
  return out;
}

const tokenFile = (who: string) => path.join(fixture.dir, `${who}.token`);

async function client(who: string, elicit?: (message: string) => { action: "accept" | "decline"; content?: Record<string, boolean> }): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(http.url), { requestInit: { headers: { Authorization: `Bearer ${gateway.issueToken(who)}` } } });
  const c = new Client({ name: "approvals-test", version: "0.0.0" }, elicit === undefined ? {} : { capabilities: { elicitation: { form: {} } } });
  if (elicit !== undefined) c.setRequestHandler(ElicitRequestSchema, (request) => elicit(request.params.message));
  await c.connect(transport);
  return c;
}

const read = (c: Client, file: string) => c.callTool({ name: "read_file", arguments: { path: file } }) as Promise<CallToolResult>;
const idIn = (text: string) => /request ([0-9a-f-]{36})/.exec(text)?.[1] ?? "";

async function until<T>(f: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await f();
    if (done(v)) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("gave up waiting");
}

describe("approval over MCP, from the command line and a webhook", () => {
  it("a client without elicitation is told the call is pending; approved from the command line, the same call returns its result", async () => {
    const alice = await client("alice");
    const pending = await read(alice, "public/hello.txt");
    expect(pending.isError).toBe(true);
    expect(textOf(pending)).toMatch(/^ERR_APPROVAL_PENDING: read_file waits for human approval \(request [0-9a-f-]{36}\) by 1 of bob, carol/);
    const id = idIn(textOf(pending));
    // The webhook got exactly what approvers see, and nothing that carries authority.
    const notice = await until(() => Promise.resolve(posted.find((p) => p.includes(id))), (p) => p !== undefined);
    const body = JSON.parse(notice ?? "{}") as { type: string; request: { id: string; args: unknown; argsHash: string; caller: { principal: string } } };
    expect(body).toMatchObject({ type: "agentcap.approval.requested", request: { id, args: { path: "public/hello.txt" }, caller: { principal: "alice" } } });
    for (const who of ["alice", "bob", "carol"]) expect(notice).not.toContain(gateway.issueToken(who).slice(0, 40));
    expect(notice).not.toMatch(/privateKey|ed25519-private/);
    expect(await agentcap("approvals", "list")).toContain(id);
    expect(JSON.parse(await agentcap("approvals", "show", id))).toMatchObject({ id, status: "pending", tool: "read_file" });
    // Asked again before approval: still pending, and the same request.
    expect(idIn(textOf(await read(alice, "public/hello.txt")))).toBe(id);
    await expect(agentcap("approvals", "approve", id, "--token", `@${tokenFile("alice")}`)).rejects.toThrow(/may not approve or deny a call of their own/);
    expect(await agentcap("approvals", "approve", id, "--token", `@${tokenFile("bob")}`)).toMatch(/^approved by bob: .* approved /);
    await expect(agentcap("approvals", "approve", id, "--token", `@${tokenFile("carol")}`)).rejects.toThrow(/no longer pending/);
    const done = await until(() => read(alice, "public/hello.txt"), (r) => r.isError !== true);
    expect(textOf(done)).toContain("hello from the workspace");
    expect(JSON.parse(await agentcap("approvals", "show", id))).toMatchObject({ status: "executed", approvals: [{ principal: "bob" }] });
    // The approval was for that call: once more, it waits for approval again.
    const again = await read(alice, "public/hello.txt");
    expect(textOf(again)).toMatch(/ERR_APPROVAL_PENDING/);
    expect(idIn(textOf(again))).not.toBe(id);
    await agentcap("approvals", "deny", idIn(textOf(again)), "--token", `@${tokenFile("carol")}`, "--reason", "once is enough");
    const refused = await until(() => read(alice, "public/hello.txt"), (r) => !textOf(r).includes("PENDING"));
    expect(textOf(refused)).toMatch(/^ERR_APPROVAL_REFUSED: .*carol denied the call: once is enough/);
    await alice.close();
  });

  it("other arguments are another call, waiting for its own approval", async () => {
    const alice = await client("alice");
    const first = idIn(textOf(await read(alice, "public/hello.txt")));
    const other = idIn(textOf(await read(alice, "public/other.txt")));
    expect(other).not.toBe(first);
    const views = (await agentcap("approvals", "list", "--json")).trim().split("\n").map((l) => JSON.parse(l) as { id: string; args: unknown });
    expect(views.find((v) => v.id === other)?.args).toEqual({ path: "public/other.txt" });
    for (const id of [first, other]) await agentcap("approvals", "deny", id, "--token", `@${tokenFile("bob")}`);
    await alice.close();
  });

  it("a client with elicitation is asked whether to keep waiting: declining fails the call, accepting gets the result once approved", async () => {
    const asked: string[] = [];
    const declining = await client("alice", (m) => {
      asked.push(m);
      return { action: "decline" };
    });
    const declined = await read(declining, "public/hello.txt");
    expect(textOf(declined)).toMatch(/^ERR_APPROVAL_REFUSED: .*chose not to wait/);
    expect(asked[0]).toMatch(/needs approval by 1 of bob, carol before it runs; request [0-9a-f-]{36} waits until/);
    expect(JSON.parse(await agentcap("approvals", "show", idIn(asked[0] ?? "")))).toMatchObject({ status: "cancelled" });
    await declining.close();

    const accepting = await client("alice", () => ({ action: "accept", content: { keepWaiting: true } }));
    const call = read(accepting, "public/hello.txt");
    const [view] = await until(
      async () => (await agentcap("approvals", "list", "--json")).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { id: string }),
      (v) => v.length > 0,
    );
    await agentcap("approvals", "approve", view?.id ?? "", "--token", `@${tokenFile("carol")}`);
    expect(textOf(await call)).toContain("hello from the workspace");
    await accepting.close();
  });

  it("the command line needs a gateway with approvals, and a token that says who approves", async () => {
    const plain = makeFixture();
    try {
      await expect(agentcap("approvals", "list", "--config", plain.configFile)).rejects.toThrow(/no approvals section/);
    } finally {
      plain.cleanup();
    }
    writeFileSync(path.join(fixture.dir, "empty.token"), "\n");
    await expect(agentcap("approvals", "approve", "x", "--token", `@${path.join(fixture.dir, "empty.token")}`)).rejects.toThrow(/holds no token/);
    writeFileSync(path.join(fixture.dir, "bad.token"), "not-a-token");
    await expect(agentcap("approvals", "approve", "x", "--token", `@${path.join(fixture.dir, "bad.token")}`)).rejects.toThrow(/token/i);
    await expect(agentcap("approvals", "show", "no-such-id")).rejects.toThrow(/no approval request/);
  });
});
