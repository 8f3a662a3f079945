import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditRecord } from "../../src/audit/index.ts";
import { loadGatewayConfig } from "../../src/mcp/config.ts";
import { openGateway, type Gateway } from "../../src/mcp/gateway.ts";
import { listenHttp, type HttpGateway } from "../../src/mcp/http.ts";
import { startExplorer } from "../../src/cli/explore-command.ts";
import type { DelegationTree } from "../../src/web/index.ts";
import { httpClient, makeFixture, textOf, type Fixture } from "./support.ts";

/* The audit explorer as the gateway serves it: the gateway's own log, its tokens, its revocations. */

let fixture: Fixture;
let gateway: Gateway;
let http: HttpGateway;
let origin: string;

beforeAll(async () => {
  fixture = makeFixture();
  const config = fixture.config as { policy: { roles: Record<string, unknown>; principals: Record<string, unknown> } };
  config.policy.roles.auditor = { audit: ["read"], revoke: [{ target: "session" }, { target: "link" }] };
  config.policy.principals.auditor = { roles: ["auditor"] };
  const { writeFileSync } = await import("node:fs");
  writeFileSync(fixture.configFile, JSON.stringify(config));
  gateway = await openGateway(await loadGatewayConfig(fixture.configFile));
  http = await listenHttp(gateway, { host: "127.0.0.1", port: 0 }, { log: () => undefined });
  origin = new URL(http.url).origin;
});

afterAll(async () => {
  await http.close();
  await gateway.close();
  fixture.cleanup();
});

const api = (path: string, token: string | null, init: RequestInit = {}) =>
  fetch(`${origin}/explore/api/${path}`, { ...init, headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...(init.headers as Record<string, string> | undefined) } });

describe("the gateway's explorer", () => {
  it("shows an auditor the calls made through the gateway, each under its session, and refuses others", async () => {
    const alice = gateway.issueToken("alice");
    const { client } = await httpClient(http.url, alice);
    expect(textOf(await client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } }))).toContain("hello");
    await client.callTool({ name: "read_file", arguments: { path: "private/secret.txt" } });

    const auditor = gateway.issueToken("auditor");
    const res = await api("events?principal=alice&tool=read_file", auditor);
    if (res.status !== 200) throw new Error(await res.clone().text());
    expect(res.status).toBe(200);
    const { events } = (await res.json()) as { events: AuditRecord[] };
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events.every((e) => e.event.subject.sessionId !== null)).toBe(true);
    expect(events.some((e) => !e.event.decision.allowed)).toBe(true);

    expect((await api("events", null)).status).toBe(401);
    expect((await api("events", alice)).status).toBe(403);

    // Revoking alice's session from the explorer closes it: her next call is refused.
    const session = events[0]?.event.subject.sessionId ?? "";
    const tree = (await (await api(`tree?root=${events[0]?.event.subject.lineage[0]?.id ?? ""}`, auditor)).json()) as DelegationTree;
    expect(tree.nodes.some((n) => n.labels.session === session)).toBe(true);
    const revoked = await api("revoke", auditor, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ target: { session }, reason: "incident" }) });
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({ kind: "session", id: session, reached: { sessions: 1 } });
    await expect(client.callTool({ name: "read_file", arguments: { path: "public/hello.txt" } })).rejects.toThrow();
    await client.close().catch(() => undefined);
  });

  it("answers only to the gateway's own Host and Origin, as every route does", async () => {
    const status = (headers: Record<string, string>) =>
      new Promise<number>((resolve, reject) => {
        const req = request(`${origin}/explore/api/session`, { headers: { authorization: `Bearer ${gateway.issueToken("auditor")}`, ...headers } }, (res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
        });
        req.on("error", reject);
        req.end();
      });
    expect(await status({})).toBe(200);
    expect(await status({ host: "rebound.example" })).toBe(403);
    expect(await status({ origin: "https://evil.example" })).toBe(403);
  });
});

describe("agentcap audit explore", () => {
  it("serves the explorer over a gateway's stores from its configuration, beside the running gateway", async () => {
    const handle = await startExplorer({ config: fixture.configFile, port: 0 }, () => undefined);
    try {
      expect(handle.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/explore\/$/);
      const session = (token: string | null) => fetch(new URL("api/session", handle.url), { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
      expect(await (await session(gateway.issueToken("auditor"))).json()).toMatchObject({ principal: "auditor", scope: { all: true }, canRevoke: true });
      expect((await session(gateway.issueToken("bob"))).status).toBe(403);
      expect((await session(null)).status).toBe(401);
      const events = await fetch(new URL("api/events?principal=alice&action=revoke", handle.url), { headers: { authorization: `Bearer ${gateway.issueToken("auditor")}` } });
      expect(events.status).toBe(200);
    } finally {
      await handle.close();
    }
  });
});
