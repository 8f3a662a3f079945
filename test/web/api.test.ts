import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMint } from "../../src/index.ts";
import type { AuditRecord } from "../../src/audit/index.ts";
import type { ActivityChart, CapabilityDetail, DelegationTree } from "../../src/web/index.ts";
import { eventFor, HOUR, intentOf, T0 } from "../audit/fixtures.ts";
import { explorerWorld, fakePage, type ExplorerWorld } from "./world.ts";

let world: ExplorerWorld;
let page: ReturnType<typeof fakePage>;

beforeAll(async () => {
  page = fakePage();
  world = await explorerWorld({ pageDir: page.dir });
});

afterAll(async () => {
  await world.close();
  page.remove();
});

const api = (path: string, init: RequestInit & { token?: string | null } = {}) => {
  const { token, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (token !== undefined && token !== null) headers.set("authorization", `Bearer ${token}`);
  return fetch(`${world.origin}/explore/api/${path}`, { ...rest, headers });
};

const events = async (query: string, token: string): Promise<AuditRecord[]> => {
  const res = await api(`events?${query}`, { token });
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as { events: AuditRecord[] }).events;
};

/** An operator outside the explorer, revoking through the token store as the CLI does. */
const operator = createMint({ issuer: "ops", policy: () => ({ revoke: [{ target: "principal" }] }) }).issue({ id: "ops" });
const idOf = (name: string): string => world.named.find(([n]) => n === name)?.[1].id ?? "";
const revokeBody = (target: Record<string, string>) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ target, reason: "incident 42" }) });

describe("explorer API: who may read", () => {
  const READS = ["session", "events", "chart", "tree?root=x", "capability?id=x", "integrity", "stream"];

  it.each(READS)("GET %s without a token is 401 with a Bearer challenge, and names no event", async (route) => {
    const res = await api(route);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    expect(await res.text()).not.toContain("alice");
  });

  it.each(READS)("GET %s with a token signed by an unknown key, or garbage, is 401 invalid_token", async (route) => {
    for (const token of [world.foreignToken, "not-a-token", `${world.token("admin").slice(0, -4)}AAAA`]) {
      const res = await api(route, { token });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
    }
  });

  it.each(READS)("GET %s with a token whose grant has no audit domain is 403", async (route) => {
    const res = await api(route, { token: world.token("nogrant") });
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain("alice");
  });

  it("a revoked reader's token is refused from then on", async () => {
    const token = world.token("auditor");
    expect((await api("events", { token })).status).toBe(200);
    await world.tokens.revoke({ principal: "auditor" }, { by: operator });
    try {
      expect((await api("events", { token })).status).toBe(401);
      expect((await api("stream", { token })).status).toBe(401);
    } finally {
      await world.tokens.reinstate({ principal: "auditor" });
    }
  });

  it("the session says who reads and what: every tenant, or only some", async () => {
    const admin = (await (await api("session", { token: world.token("admin") })).json()) as { principal: string; scope: unknown; canRevoke: boolean };
    expect(admin).toEqual({ principal: "admin", scope: { all: true }, canRevoke: true });
    const acme = (await (await api("session", { token: world.token("acme") })).json()) as { scope: unknown };
    expect(acme.scope).toEqual({ all: false, tenants: ["acme"] });
  });
});

describe("explorer API: a reader confined to a tenant", () => {
  it("sees only that tenant's events, named or not", async () => {
    const token = world.token("acme");
    const all = await events("", token);
    expect(all.length).toBeGreaterThan(0);
    expect(all.every((r) => r.event.subject.mint.principal === "alice")).toBe(true);
    expect(await events("tenant=acme", token)).toEqual(all);
  });

  it("is refused another tenant's events, whether asked by tenant or by principal", async () => {
    const token = world.token("acme");
    expect((await api("events?tenant=globex", { token })).status).toBe(403);
    expect(await events("principal=bob", token)).toEqual([]);
  });

  it("gets the same 404 for another tenant's capability as for one that does not exist", async () => {
    const token = world.token("acme");
    const bobRoot = world.w.bob.id;
    const answers = await Promise.all([`tree?root=${bobRoot}`, "tree?root=no-such-capability", `capability?id=${world.w.report.id}`, "capability?id=no-such-capability"].map(async (route) => {
      const res = await api(route, { token });
      return { status: res.status, body: await res.text() };
    }));
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([404]));
    expect(new Set(answers.map((a) => a.body)).size).toBe(1);
  });

  it("a reader of several tenants must name one, and only one of its own", async () => {
    const token = world.token("multi");
    expect((await api("events", { token })).status).toBe(403);
    expect((await events("tenant=globex", token)).every((r) => r.event.subject.mint.principal === "bob")).toBe(true);
    expect((await api("events?tenant=initech", { token })).status).toBe(403);
  });

  it("is refused the log's integrity, which covers every tenant", async () => {
    expect((await api("integrity", { token: world.token("acme") })).status).toBe(403);
  });
});

describe("explorer API: the timeline", () => {
  it("filters as the query primitive does: principal, request, capability, tool, decision, time range", async () => {
    const token = world.token("admin");
    const names = (records: AuditRecord[]) => records.map((r) => world.named.find(([, e]) => e.id === r.event.id)?.[0]);
    expect(names(await events("principal=alice", token))).toEqual(["a1", "a2", "a3", "a4", "a5", "a6", "a7"]);
    expect(names(await events("requestId=req-bob", token))).toEqual(["b1", "b2", "b3", "b4"]);
    expect(names(await events(`capability=${world.w.searchTool.id}`, token))).toEqual(["a2", "a3", "a7"]);
    expect(names(await events("tool=run_report", token))).toEqual(["b1", "b2", "b3", "b4"]);
    expect(names(await events("decision=denied&principal=alice", token))).toEqual(["a3", "a6", "a7"]);
    const since = new Date(T0).toISOString();
    expect(names(await events(`since=${since}&until=${String(T0 + 2 * 3_600_000)}&principal=alice`, token))).toEqual(["a2"]);
  });

  it("pages newest first, and says where the next page starts", async () => {
    const token = world.token("admin");
    const res = await api("events?order=desc&limit=3", { token });
    const body = (await res.json()) as { events: AuditRecord[]; next: number | null };
    expect(body.events).toHaveLength(3);
    expect(body.next).toBe(body.events[2]?.seq);
    const rest = await events(`order=desc&limit=100&after=${String(body.next)}`, token);
    expect(rest.every((r) => r.seq < (body.next ?? 0))).toBe(true);
  });

  it.each([
    ["an unknown filter", "colour=red"],
    ["a token in the URL", "access_token=abc"],
    ["a filter given twice", "principal=alice&principal=bob"],
    ["a bad decision", "decision=maybe"],
    ["a bad action", "action=fs.chmod"],
    ["a bad time", "since=yesterday-ish"],
    ["a bad limit", "limit=-1"],
    ["a limit over the maximum", "limit=10001"],
    ["since after until", `since=${String(T0)}&until=${String(T0 - 1)}`],
  ])("refuses %s with 400 and says why", async (_what, query) => {
    const res = await api(`events?${query}`, { token: world.token("admin") });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message.length).toBeGreaterThan(5);
  });
});

describe("explorer API: charts", () => {
  const chart = async (query: string, token: string): Promise<ActivityChart> => {
    const res = await api(`chart?${query}`, { token });
    expect(res.status, await res.clone().text()).toBe(200);
    return (await res.json()) as ActivityChart;
  };
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

  it.each(["principal", "tool", "tenant"])("counts every event the timeline shows, by %s, each in one bucket as allowed or denied", async (by) => {
    const token = world.token("admin");
    const all = await events("order=asc&limit=1000", token);
    const c = await chart(`by=${by}&buckets=7`, token);
    expect(c.by).toBe(by);
    expect(c.events).toBe(all.length);
    expect(c.series.every((s) => s.allowed.length === 7 && s.denied.length === 7 && sum(s.allowed) + sum(s.denied) === s.total)).toBe(true);
    expect(sum(c.series.map((s) => s.total))).toBe(all.length);
    expect(sum(c.series.map((s) => sum(s.denied)))).toBe(all.filter((r) => !r.event.decision.allowed).length);
  });

  it("groups by principal, tool and tenant, and counts within the timeline's filters and time range", async () => {
    const token = world.token("admin");
    const alice = (await chart("by=principal&principal=alice", token)).series;
    expect(alice.map((s) => [s.key, s.total, sum(s.denied)])).toEqual([["alice", 7, 3]]);
    const tools = await chart("by=tool&requestId=req-bob", token);
    expect(tools.series.map((s) => [s.key, s.total])).toEqual([["run_report", 4]]);
    const tenants = await chart("by=tenant&requestId=req-bob", token);
    expect(Object.fromEntries(tenants.series.map((s) => [s.key, s.total]))).toEqual({ globex: 2, initech: 2 });
    const denied = await chart("by=principal&decision=denied", token);
    expect(denied.series.every((s) => sum(s.allowed) === 0)).toBe(true);
    // Six hour-wide buckets from T0: alice's call at T0 + 1 h is in the second, her denied one at T0 + 2 h in the third.
    const day = await chart(`by=principal&principal=alice&since=${String(T0)}&until=${String(T0 + 6 * HOUR)}&buckets=6`, token);
    expect([day.from, day.bucketMs, day.buckets]).toEqual([T0, HOUR, 6]);
    expect(day.series[0]?.allowed).toEqual([0, 1, 0, 1, 1, 0]);
    expect(day.series[0]?.denied).toEqual([0, 0, 1, 0, 0, 1]);
  });

  it("shows a confined reader only its tenant's events", async () => {
    const c = await chart("by=tenant", world.token("acme"));
    expect(c.series.map((s) => s.key)).toEqual(["acme"]);
    expect((await chart("by=principal", world.token("acme"))).series.map((s) => s.key)).toEqual(["alice"]);
    expect((await api("chart?tenant=globex", { token: world.token("acme") })).status).toBe(403);
  });

  it.each([
    ["by=capability", /by must be one of principal, tool, tenant/],
    ["buckets=0", /buckets must be from 1 to 120/],
    ["buckets=121", /buckets must be from 1 to 120/],
    ["buckets=x", /whole number/],
    ["limit=5", /leave out order, limit and after/],
    ["order=desc", /leave out order, limit and after/],
    ["colour=red", /unknown filter/],
  ])("refuses %s with a message", async (query, message) => {
    const res = await api(`chart?${query}`, { token: world.token("admin") });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(message);
  });
});

describe("explorer API: trees, capabilities and integrity", () => {
  it("the delegation tree of a root: each node's grant summary, status and calls, denied ones marked", async () => {
    const res = await api(`tree?root=${world.w.alice.id}`, { token: world.token("admin") });
    const tree = (await res.json()) as DelegationTree;
    expect(tree.mint.principal).toBe("alice");
    const [root, narrowed, session, search] = tree.nodes;
    expect(tree.nodes.map((n) => n.depth)).toEqual([0, 1, 2, 3]);
    expect(search?.parent).toBe(session?.id);
    expect(root?.summary).toContain("tools: search, fetch_page, lookup_customer, run_report");
    expect(narrowed?.summary).toContain("tools: search, fetch_page");
    expect(session?.labels).toEqual({ session: "sess-1", task: "task-1" });
    expect(root?.status).toBe("live");
    // The session's caretaker revoked it: the log saw a call refused for it.
    expect(session?.status).toBe("revoked");
    expect(search?.status).toBe("revoked");
    expect(search?.calls).toEqual({ allowed: 1, denied: 2 });
    expect(search?.recent.filter((c) => !c.allowed).map((c) => c.id)).toEqual([idOf("a7"), idOf("a3")]);
  });

  it("a capability's detail: its lineage from the root, each link summarized, and its root's mint record", async () => {
    const res = await api(`capability?id=${world.w.searchTool.id}`, { token: world.token("admin") });
    const detail = (await res.json()) as CapabilityDetail;
    expect(detail.lineage.map((l) => l.id)).toEqual(world.w.searchTool.lineage.map((l) => l.id));
    expect(detail.lineage[3]?.summary).toContain("http GET https://api.example.com/v1/");
    expect(detail.mint).toMatchObject({ principal: "alice", requestId: "req-alice", tenants: ["acme"] });
    expect(detail.recent).toHaveLength(3);
  });

  it("integrity: the latest signed checkpoint, whether the log verifies, and intents without an outcome", async () => {
    const intent = intentOf({ ...eventFor(world.w.report, { action: "tool.call", tool: "run_report", tenant: "globex" }), id: randomUUID() });
    await world.audit.intend(intent);
    await world.audit.checkpoint();
    const res = await api("integrity", { token: world.token("admin") });
    const body = (await res.json()) as { ok: boolean; latestCheckpoint: { size: number; note: string } | null; openIntents: { id: string }[]; openIntentCount: number; events: number };
    expect(body.ok).toBe(true);
    expect(body.latestCheckpoint?.size).toBe(body.events);
    expect(body.latestCheckpoint?.note).toContain("explorer-test/audit");
    expect(body.openIntents.map((i) => i.id)).toContain(intent.id);
  });
});

describe("explorer API: revoking", () => {
  it("needs a revoke grant: a reader without one is refused and nothing is revoked", async () => {
    const before = (await world.tokens.list()).length;
    const res = await api("revoke", { token: world.token("auditor"), ...revokeBody({ session: "sess-1" }) });
    expect(res.status).toBe(403);
    expect((await world.tokens.list()).length).toBe(before);
  });

  it.each([
    ["text/plain, as a cross-site form could send", { "content-type": "text/plain" }, JSON.stringify({ target: { session: "x" } }), 415],
    ["a form encoding", { "content-type": "application/x-www-form-urlencoded" }, "target=x", 415],
    ["a request the browser marks cross-site", { "content-type": "application/json", "sec-fetch-site": "cross-site" }, JSON.stringify({ target: { session: "x" } }), 403],
    ["another site's Origin", { "content-type": "application/json", origin: "https://evil.example" }, JSON.stringify({ target: { session: "x" } }), 403],
    ["a target the page does not offer", { "content-type": "application/json" }, JSON.stringify({ target: { keyId: 1 } }), 400],
    ["two targets", { "content-type": "application/json" }, JSON.stringify({ target: { session: "x", principal: "y" } }), 400],
    ["a body that is not JSON", { "content-type": "application/json" }, "{", 400],
  ])("refuses %s", async (_what, headers, body, status) => {
    const before = (await world.tokens.list()).length;
    const res = await api("revoke", { token: world.token("admin"), method: "POST", headers, body });
    expect(res.status).toBe(status);
    expect((await world.tokens.list()).length).toBe(before);
  });

  it("revokes a session with the reason given, says what it reached, and the tree shows it revoked", async () => {
    const res = await api("revoke", { token: world.token("admin"), ...revokeBody({ session: "sess-1" }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ revoked: true, kind: "session", id: "sess-1", reason: "incident 42", reached: { capabilities: expect.any(Number) as number } });
    const revocations = await events("action=revoke&order=desc&limit=1", world.token("admin"));
    expect(revocations[0]?.event.request).toMatchObject({ action: "revoke", target: "session", id: "sess-1" });
    const tree = (await (await api(`tree?root=${world.w.alice.id}`, { token: world.token("admin") })).json()) as DelegationTree;
    expect(tree.nodes.find((n) => n.labels.session === "sess-1")?.statusReason).toContain("session sess-1 revoked: incident 42");
  });
});

describe("explorer API: live updates", () => {
  it("streams events written after it opened, and ends when the reader's token is revoked", async () => {
    const token = world.token("admin");
    const res = await api("stream", { token });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    const fresh = eventFor(world.w.bob, { action: "tool.call", tool: "run_report", tenant: "initech" }, { at: T0 + 30 * 3_600_000 });
    await world.audit.write(fresh);
    while (!text.includes(fresh.id)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended early: ${text}`);
      text += decoder.decode(value);
    }
    expect(text).toContain("event: events");
    await world.tokens.revoke({ principal: "admin" }, { by: operator });
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    expect(text).toContain("event: end");
    await world.tokens.reinstate({ principal: "admin" });
  });
});

describe("explorer page", () => {
  it("is served with a strict Content-Security-Policy, no framing, no sniffing", async () => {
    const res = await fetch(world.url);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).not.toContain("unsafe-eval");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("serves its assets and nothing else: no traversal, no unknown types", async () => {
    expect((await fetch(`${world.origin}/explore/assets/app.js`)).headers.get("content-type")).toContain("text/javascript");
    for (const path of ["/explore/assets/../index.html", "/explore/assets/%2e%2e%2findex.html", "/explore/assets/app.exe", "/explore/../package.json", "/etc/passwd"]) {
      expect((await fetch(`${world.origin}${path}`)).status, path).toBeGreaterThanOrEqual(400);
    }
  });

  it("answers only to its own Host, against DNS rebinding", async () => {
    const { request } = await import("node:http");
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${world.origin}/explore/api/session`, { headers: { host: "attacker.example:80", authorization: `Bearer ${world.token("admin")}` } }, (res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(403);
  });
});
