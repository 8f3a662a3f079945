import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prefixSuccessor, type AuditQuery, type HistogramKey, type HistogramOptions } from "../../src/audit/query.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { InvalidInput } from "../../src/index.ts";
import { eachKit, eventFor, HOUR, intentOf, scenario, T0, type StoreKit } from "./fixtures.ts";

eachKit("audit store: the query primitive", ({ make }) => {
  let kit: StoreKit;
  let store: AuditStore;
  let s: ReturnType<typeof scenario>;
  const nameOf = new Map<string, string>();

  beforeAll(async () => {
    kit = make();
    store = await kit.open();
    s = scenario();
    for (const [name, event] of s.named) {
      nameOf.set(event.id, name);
      await store.write(event);
    }
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  const names = async (query: AuditQuery) => (await store.query(query)).map((r) => nameOf.get(r.event.id));

  it("lists the whole log in chain order when no filter is given", async () => {
    expect(await names({})).toEqual(["a1", "a2", "a3", "a4", "a5", "a6", "a7", "b1", "b2", "b3", "b4"]);
  });

  it.each<[string, () => AuditQuery, string[]]>([
    ["principal: everything Alice's bot did", () => ({ principal: "alice" }), ["a1", "a2", "a3", "a4", "a5", "a6", "a7"]],
    ["principal and time range: everything Alice's bot did today", () => ({ principal: "alice", since: T0, until: new Date(T0 + 24 * HOUR) }), ["a2", "a3", "a4", "a5", "a6", "a7"]],
    ["root request", () => ({ requestId: "req-bob" }), ["b1", "b2", "b3", "b4"]],
    ["descendants of the session link", () => ({ descendantsOf: s.w.session.capability.id }), ["a2", "a3", "a4", "a5", "a7"]],
    ["descendants of the search tool's capability (itself included)", () => ({ descendantsOf: s.w.searchTool.id }), ["a2", "a3", "a7"]],
    ["descendants of a root", () => ({ descendantsOf: s.w.bob.id }), ["b1", "b2", "b3", "b4"]],
    ["descendants of an unknown capability", () => ({ descendantsOf: "no-such-capability" }), []],
    ["capability hash: did this capability ever do X?", () => ({ capabilityHash: s.w.searchTool.hash, action: "http.request" }), ["a2", "a3"]],
    ["capability hash of a root (its descendants excluded)", () => ({ capabilityHash: s.w.alice.hash }), ["a1", "a6"]],
    ["tool", () => ({ tool: "run_report" }), ["b1", "b2", "b3", "b4"]],
    ["action", () => ({ action: "fs.read" }), ["a4"]],
    ["resource prefix: a directory", () => ({ resourcePrefix: "/srv/data/" }), ["a4", "a5", "a6"]],
    ["resource prefix: part of a path", () => ({ resourcePrefix: "/srv/data/rep" }), ["a4"]],
    ["resource prefix: an origin and path", () => ({ resourcePrefix: "https://api.example.com/v1/" }), ["a2"]],
    ["resource prefix: a model", () => ({ resourcePrefix: "db:Customer" }), ["b1", "b2"]],
    ["resource prefix: a program", () => ({ resourcePrefix: "/usr/bin/curl" }), ["b3"]],
    ["decision: denied only", () => ({ decision: "denied" }), ["a3", "a6", "a7", "b2"]],
    ["decision: allowed only", () => ({ decision: "allowed", principal: "bob" }), ["b1", "b3", "b4"]],
    ["time range", () => ({ since: T0 + 2 * HOUR, until: T0 + 4 * HOUR }), ["a3", "a4", "b2", "b3"]],
    ["tenant named by the request", () => ({ tenant: "initech" }), ["b2", "b4"]],
    ["tenant of a single-tenant root", () => ({ tenant: "acme", action: "tool.call" }), ["a1", "a7"]],
    ["session label", () => ({ sessionId: "sess-1" }), ["a2", "a3", "a4", "a5", "a7"]],
    ["task label", () => ({ taskId: "task-1", decision: "denied" }), ["a3", "a7"]],
    ["denied under Alice's session today", () => ({ descendantsOf: s.w.session.capability.id, decision: "denied", since: T0 }), ["a3", "a7"]],
  ])("filters by %s", async (_name, query, expected) => {
    expect(await names(query())).toEqual(expected);
  });

  it("pages through results in either order", async () => {
    expect(await names({ limit: 3 })).toEqual(["a1", "a2", "a3"]);
    expect(await names({ limit: 3, after: 3 })).toEqual(["a4", "a5", "a6"]);
    expect(await names({ limit: 3, order: "desc" })).toEqual(["b4", "b3", "b2"]);
    expect(await names({ limit: 3, order: "desc", after: 9 })).toEqual(["b1", "a7", "a6"]);
    expect(await names({ descendantsOf: s.w.session.capability.id, limit: 2, after: 2 })).toEqual(["a3", "a4"]);
    expect(await names({ descendantsOf: s.w.session.capability.id, order: "desc", after: 7 })).toEqual(["a5", "a4", "a3", "a2"]);
  });

  it("returns each event with its chain position, denial and full lineage", async () => {
    const [a7] = await store.query({ descendantsOf: s.w.searchTool.id, decision: "denied", tool: "search", action: "tool.call" });
    expect(a7?.seq).toBe(7);
    expect(a7?.event.decision).toMatchObject({ allowed: false, code: "ERR_REVOKED", link: 2, linkId: s.w.session.capability.id });
    expect(a7?.event.subject.lineage.map((l) => l.revocable)).toEqual([false, false, true, false]);
    expect(a7?.event.subject.lineage[2]?.labels).toEqual({ session: "sess-1", task: "task-1" });
  });

  it("keeps secrets out of the stored rows by default", async () => {
    const rows = await kit.raw("SELECT body FROM audit_events");
    const stored = rows.map((r) => String(r.body)).join("\n");
    for (const secret of ["s3cr3t-t0ken", "hello", "carol@example.com", "xyz-very-secret", "v4lue"]) expect(stored).not.toContain(secret);
    const [a2] = await store.query({ action: "http.request", limit: 1 });
    expect(a2?.event.request).toMatchObject({ url: "https://api.example.com/v1/search?q=[redacted]&token=[redacted]" });
    const [b3] = await store.query({ action: "exec" });
    expect(b3?.event.request).toMatchObject({ argv: ["/usr/bin/curl", "-H", "Authorization: Bearer [redacted]", "https://x.test/a?k=[redacted]"] });
  });

  it.each<[string, unknown, RegExp]>([
    ["an unknown filter", { user: "alice" }, /Unrecognized key.*user/],
    ["an empty principal", { principal: "" }, /principal/],
    ["a malformed capability hash", { capabilityHash: "abc" }, /capabilityHash: must be a capability's hex SHA-256/],
    ["an unknown action", { action: "fs.chmod" }, /action/],
    ["an unknown decision", { decision: "maybe" }, /decision/],
    ["a time range that ends before it starts", { since: T0, until: T0 - 1 }, /since \(2025-01-15T09:00:00.000Z\) must be before until/],
    ["an invalid date", { since: new Date("not a date") }, /since/],
    ["a negative time", { until: -5 }, /until/],
    ["a zero limit", { limit: 0 }, /limit/],
    ["a limit over 10,000", { limit: 10_001 }, /limit/],
    ["a fractional cursor", { after: 1.5 }, /after/],
    ["an unknown order", { order: "random" }, /order/],
    ["a query that is not an object", "alice", /must be an object/],
  ])("refuses %s with InvalidInput", async (_name, query, message) => {
    const error = await store.query(query as AuditQuery).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(message);
  });

  it("ignores filters inherited from a polluted prototype", async () => {
    const query = Object.create({ principal: "nobody" }) as AuditQuery;
    expect(await names(query)).toHaveLength(11);
  });
});

eachKit("audit store: histograms", ({ make }) => {
  let kit: StoreKit;
  let store: AuditStore;
  let s: ReturnType<typeof scenario>;

  beforeAll(async () => {
    kit = make();
    store = await kit.open();
    s = scenario();
    for (const [, event] of s.named) await store.write(event);
    // An intent whose outcome met a denial while acting: allowed at the decision, denied in the end.
    const intent = intentOf(eventFor(s.w.alice, { action: "fs.read", path: "/srv/data/link" }, { at: T0 + 7 * HOUR, tool: "fetch_page" }));
    await store.intend(intent);
    const denial = { allowed: false as const, code: "ERR_CAPABILITY_DENIED" as const, capabilityId: s.w.alice.id, link: 0, linkId: s.w.alice.id, rule: "fs", because: "does not grant read on /etc/shadow", reason: "root does not grant read on /etc/shadow" };
    await store.complete({ id: intent.id, durationMs: 1, outcome: { ok: false, errorCode: "ERR_CAPABILITY_DENIED", message: "denied" }, denial: { request: { action: "fs.read", path: "/etc/shadow" }, decision: denial } });
    // And one still in flight: allowed so far.
    await store.intend(intentOf(eventFor(s.w.alice, { action: "fs.read", path: "/srv/data/slow" }, { at: T0 + 8 * HOUR, tool: "fetch_page" })));
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  /** What the histogram must say, counted from the query's own records. */
  const expected = async (query: AuditQuery, by: HistogramKey, buckets: number) => {
    const records = await store.query({ ...query, limit: 1000 });
    const times = records.map((r) => r.event.at);
    const ms = (t: number | Date | undefined) => (t instanceof Date ? t.getTime() : t);
    const from = ms(query.since) ?? Math.min(...times);
    const to = ms(query.until) ?? Math.max(...times) + 1;
    const bucketMs = Math.max(1, Math.ceil((to - from) / buckets));
    const cells = new Map<string, { key: string | null; bucket: number; allowed: number; denied: number }>();
    for (const r of records) {
      const e = r.event;
      const asked = "tenant" in e.request ? e.request.tenant : undefined;
      const key = by === "principal" ? e.subject.mint.principal : by === "tool" ? e.tool : (asked ?? (e.subject.mint.tenants.length === 1 ? (e.subject.mint.tenants[0] ?? null) : null));
      const bucket = Math.floor((e.at - from) / bucketMs);
      const cell = cells.get(`${String(key)}|${String(bucket)}`) ?? { key, bucket, allowed: 0, denied: 0 };
      if (e.decision.allowed) cell.allowed++;
      else cell.denied++;
      cells.set(`${String(key)}|${String(bucket)}`, cell);
    }
    return { from, bucketMs, rows: [...cells.values()] };
  };
  const sorted = <T extends { key: string | null; bucket: number }>(rows: readonly T[]) => [...rows].sort((a, b) => String(a.key).localeCompare(String(b.key)) || a.bucket - b.bucket);

  it.each<[string, () => AuditQuery]>([
    ["the whole log", () => ({})],
    ["one principal", () => ({ principal: "alice" })],
    ["a time range", () => ({ since: T0, until: T0 + 9 * HOUR })],
    ["denied only", () => ({ decision: "denied" })],
    ["allowed only", () => ({ decision: "allowed" })],
    ["descendants of the session link", () => ({ descendantsOf: s.w.session.capability.id })],
    ["a tenant", () => ({ tenant: "globex" })],
    ["a resource prefix", () => ({ resourcePrefix: "/srv/data/" })],
  ])("counts what the query lists, by principal, tool and tenant, each event by its final decision: %s", async (_name, query) => {
    for (const by of ["principal", "tool", "tenant"] as const) {
      for (const buckets of [1, 5, 24]) {
        const h = await store.histogram(query(), { by, buckets });
        const want = await expected(query(), by, buckets);
        expect({ from: h.from, bucketMs: h.bucketMs, rows: sorted(h.rows) }).toEqual({ from: want.from, bucketMs: want.bucketMs, rows: sorted(want.rows) });
      }
    }
  });

  it("counts the denial met while acting as denied, and nothing for an unknown capability", async () => {
    const h = await store.histogram({ principal: "alice", since: T0 + 7 * HOUR, until: T0 + 9 * HOUR }, { by: "tool", buckets: 2 });
    expect(sorted(h.rows)).toEqual([
      { key: "fetch_page", bucket: 0, allowed: 0, denied: 1 },
      { key: "fetch_page", bucket: 1, allowed: 1, denied: 0 },
    ]);
    expect((await store.histogram({ descendantsOf: "no-such-capability" }, { by: "tool", buckets: 3 })).rows).toEqual([]);
  });

  it.each<[string, unknown, unknown, RegExp]>([
    ["an unknown key", {}, { by: "resource", buckets: 3 }, /by/],
    ["no buckets", {}, { by: "tool", buckets: 0 }, /buckets/],
    ["too many buckets", {}, { by: "tool", buckets: 1001 }, /buckets/],
    ["a page", { limit: 5 }, { by: "tool", buckets: 3 }, /leave out limit/],
    ["a cursor", { after: 3, order: "desc" }, { by: "tool", buckets: 3 }, /leave out order, after/],
    ["a bad filter", { decision: "maybe" }, { by: "tool", buckets: 3 }, /decision/],
  ])("refuses %s with InvalidInput", async (_name, query, options, message) => {
    const error = await store.histogram(query as AuditQuery, options as HistogramOptions).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(message);
  });
});

describe("prefixSuccessor", () => {
  it.each([
    ["/srv/data/", "/srv/data0"],
    ["a", "b"],
    ["\u{10ffff}", null],
    ["a\u{10ffff}", "b"],
    ["\ud7ff", "\ue000"],
  ])("%j -> %j", (prefix, expected) => {
    expect(prefixSuccessor(prefix)).toBe(expected);
  });
});
