import path from "node:path";
import Database from "better-sqlite3";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, expect, it } from "vitest";
import { StoreUnavailable } from "../../src/kernel/errors.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway } from "../../src/mcp/gateway.ts";
import { listenHttp } from "../../src/mcp/http.ts";
import { errorResult } from "../../src/mcp/session.ts";
import { httpClient, makeFixture, textOf } from "../mcp/support.ts";

/*
 * The gateway's SQLite token store cannot be read (its revocation table made
 * unreadable from outside the process, as a damaged or tampered file would
 * be). The gateway cannot tell what is revoked, so it refuses: a new
 * session and a request of an open one get 503 with Retry-After
 * (ERR_STORE_UNAVAILABLE), a tool call refused inside a session gets a tool
 * error saying to retry, and the audit log records the refusal under its own
 * code. Nothing says "revoked". Once the file can be read again the same
 * session is served, and a principal revoked meanwhile is refused.
 */

const lines: string[] = [];
const fixture = makeFixture();
const gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
const http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: (line) => lines.push(line) });
const raw = new Database(path.join(fixture.dir, "state", "tokens.db"));

afterAll(async () => {
  raw.close();
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

const read = async (client: Awaited<ReturnType<typeof httpClient>>["client"]) =>
  (await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } })) as CallToolResult;

const post = (token: string, body: unknown, sessionId?: string) =>
  fetch(http.url, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      ...(sessionId === undefined ? {} : { "mcp-session-id": sessionId, "mcp-protocol-version": "2025-06-18" }),
    },
    body: JSON.stringify(body),
  });
const initialize = { jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "0" } } };

it("refuses with 503, Retry-After and ERR_STORE_UNAVAILABLE while the store cannot be read, records it as such, and serves the same session once it can", async () => {
  const aliceToken = gateway.issueToken("alice");
  const carolToken = gateway.issueToken("carol");
  const alice = await httpClient(http.url, aliceToken);
  const carol = await httpClient(http.url, carolToken);
  const held = await gateway.authenticate(aliceToken);
  expect(JSON.parse(textOf(await read(alice.client)))).toMatchObject({ text: "hello from the workspace\n" });

  raw.exec("ALTER TABLE agentcap_revoked RENAME TO agentcap_revoked_away");

  const opening = await post(aliceToken, initialize);
  expect(opening.status).toBe(503);
  expect(opening.headers.get("retry-after")).toBe("2");
  const message = ((await opening.json()) as { error: { message: string } }).error.message;
  expect(message).toBe("ERR_STORE_UNAVAILABLE: the token could not be checked for revocation because the token store is unavailable; retry shortly");
  const inSession = await post(aliceToken, { jsonrpc: "2.0", id: 2, method: "tools/list" }, alice.transport.sessionId);
  expect(inSession.status).toBe(503);
  expect(inSession.headers.get("retry-after")).toBe("2");
  expect(lines.filter((l) => l.startsWith("503 ")).length).toBe(2);
  expect(lines.filter((l) => l.startsWith("503 ")).every((l) => /ERR_STORE_UNAVAILABLE: .*cannot read its SQLite file/.test(l))).toBe(true);
  expect(lines.some((l) => /^401 /.test(l))).toBe(false);

  // A call that reaches the dispatcher meanwhile: refused as StoreUnavailable, shown to the model as a tool error to retry, and audited under its own code.
  const refused = await gateway.dispatcher.call("read_file", { path: "public/hello.txt" }, held).then(
    () => null,
    (e: unknown) => e,
  );
  expect(refused).toBeInstanceOf(StoreUnavailable);
  const shown = errorResult(refused);
  expect(shown.isError).toBe(true);
  expect(textOf(shown)).toBe("ERR_STORE_UNAVAILABLE: the capability could not be checked for revocation: the token store cannot be read now, so nothing was done; retry shortly");
  const records = await gateway.audit.query({ limit: 10_000 });
  const refusals = records.filter((r) => !r.event.decision.allowed && r.event.decision.code === "ERR_STORE_UNAVAILABLE");
  expect(refusals.length).toBeGreaterThan(0);
  expect(records.filter((r) => !r.event.decision.allowed && r.event.decision.code === "ERR_REVOKED")).toEqual([]);

  // Revoked by another process while this one could not read the list.
  raw.prepare("INSERT INTO agentcap_revoked_away (kind, id, reason, revoked_at) VALUES ('principal', 'carol', 'left during the outage', ?)").run(Date.now());
  raw.exec("ALTER TABLE agentcap_revoked_away RENAME TO agentcap_revoked");

  expect(JSON.parse(textOf(await read(alice.client)))).toMatchObject({ text: "hello from the workspace\n" });
  await expect(read(carol.client)).rejects.toThrow(/ERR_REVOKED/);
  expect((await post(carolToken, initialize)).status).toBe(401);
  await alice.client.close();
  await carol.client.close().catch(() => undefined);
});
