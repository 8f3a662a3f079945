import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditFailure } from "../../src/kernel/errors.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import type { AuditEvent } from "../../src/kernel/audit-sink.ts";
import { InvalidInput, type Capability, type Request } from "../../src/index.ts";
import { eachKit, eventFor, world, type StoreKit } from "./fixtures.ts";

eachKit("audit store: writing", ({ make }) => {
  let kit: StoreKit;
  beforeAll(() => {
    kit = make();
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  it("chains every event to the one before it, and verifies", async () => {
    const w = world();
    const store = await kit.open();
    expect(await store.head()).toBeNull();
    await store.write(eventFor(w.searchTool, { action: "tool.call", tool: "search" }));
    await store.write(eventFor(w.searchTool, { action: "http.request", method: "GET", url: "https://api.example.com/v1/q?x=1" }));
    const [first, second] = await store.query();
    expect(first?.seq).toBe(1);
    expect(first?.prevHash).toBe("0".repeat(64));
    expect(second?.prevHash).toBe(first?.hash);
    expect(await store.head()).toEqual({ seq: 2, hash: second?.hash });
    const report = await store.verify();
    expect(report).toMatchObject({ ok: true, events: 2, complete: true, problems: [] });
  });

  it("stores the full lineage and mint record, so the event reads back as written (after redaction)", async () => {
    const w = world();
    const store = await kit.open();
    const event = eventFor(w.searchTool, { action: "tool.call", tool: "search", tenant: "acme" });
    await store.write(event);
    const [record] = await store.query();
    expect(record?.event).toEqual(JSON.parse(JSON.stringify(event)));
    expect(record?.event.subject.lineage.map((l) => l.id)).toEqual([w.alice.id, w.session.capability.parentId, w.session.capability.id, w.searchTool.id]);
    expect(record?.event.subject).toMatchObject({ sessionId: "sess-1", taskId: "task-1", mint: { principal: "alice", requestId: "req-alice" } });
  });

  it("resolves write() only once the event is committed: another connection sees it at once", async () => {
    const w = world();
    const store = await kit.open();
    const event = eventFor(w.alice, { action: "tool.call", tool: "search" });
    await store.write(event);
    expect(await kit.raw("SELECT id FROM audit_events WHERE id = ?", [event.id])).toEqual([{ id: event.id }]);
  });

  it("batches concurrent writers into one chain with no gaps", async () => {
    const w = world();
    const store = await kit.open();
    const events = Array.from({ length: 300 }, (_, i) => eventFor(w.searchTool, { action: "fs.read", path: `/srv/data/f${String(i)}` }));
    await Promise.all(events.map((e) => store.write(e)));
    const rows = await store.query({ limit: 1000 });
    expect(rows.map((r) => r.seq)).toEqual(events.map((_, i) => i + 1));
    expect(new Set(rows.map((r) => r.event.id))).toEqual(new Set(events.map((e) => e.id)));
    expect((await store.verify()).ok).toBe(true);
  });

  it("keeps a single chain when two stores (as two processes would) append to the same log", async () => {
    const w = world();
    const a = await kit.open();
    const b = await kit.open({ again: true });
    const write = (s: AuditStore, i: number) => s.write(eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: i }));
    await Promise.all(Array.from({ length: 60 }, (_, i) => write(i % 2 === 0 ? a : b, i)));
    const report = await a.verify();
    expect(report).toMatchObject({ ok: true, events: 60 });
  });

  it("refuses a repeated event id alone; the rest of the batch is written", async () => {
    const w = world();
    const store = await kit.open();
    const e1 = eventFor(w.alice, { action: "tool.call", tool: "search" });
    await store.write(e1);
    const e2 = eventFor(w.alice, { action: "tool.call", tool: "search" });
    const results = await Promise.allSettled([store.write(e1), store.write(e2), store.write({ ...e2 })]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "fulfilled", "rejected"]);
    const reason = (results[0] as PromiseRejectedResult).reason as InvalidInput;
    expect(reason).toBeInstanceOf(InvalidInput);
    expect(reason.message).toContain(`${e1.id} is already in the log`);
    expect((await store.verify()).events).toBe(2);
  });

  it("refuses an event whose lineage names a known link id with different content", async () => {
    const w = world();
    const store = await kit.open();
    const event = eventFor(w.searchTool, { action: "tool.call", tool: "search" });
    await store.write(event);
    const [root, ...rest] = event.subject.lineage;
    const forged: AuditEvent = {
      ...event,
      id: "forged",
      subject: { ...event.subject, lineage: [{ ...(root as NonNullable<typeof root>), grant: { tools: ["everything"] } }, ...rest] },
    };
    await expect(store.write(forged)).rejects.toThrow(/already holds with different content/);
  });

  it("opens an existing log read-only: queries and verifies, refuses writes with AuditFailure", async () => {
    const w = world();
    const writer = await kit.open();
    await writer.write(eventFor(w.alice, { action: "tool.call", tool: "search" }));
    const reader = await kit.open({ again: true, readOnly: true });
    expect(await reader.query()).toHaveLength(1);
    expect((await reader.verify()).ok).toBe(true);
    await expect(reader.write(eventFor(w.alice, { action: "tool.call", tool: "search" }))).rejects.toThrow(/read-only/);
    await expect(reader.write(eventFor(w.alice, { action: "tool.call", tool: "search" }))).rejects.toBeInstanceOf(AuditFailure);
  });

  it("rejects writes after close with AuditFailure", async () => {
    const w = world();
    const store = await kit.open();
    await store.close();
    const failure = await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" })).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(AuditFailure);
    expect((failure as AuditFailure).code).toBe("ERR_AUDIT_FAILURE");
    await expect(store.query()).rejects.toBeInstanceOf(AuditFailure);
  });
});

/** What the dispatcher will do: decide, write the event, and act only once the event is in the log. */
async function audited(store: AuditStore, cap: Capability, request: Request, act: () => void): Promise<void> {
  await store.write(eventFor(cap, request));
  act();
}

eachKit("audit store: failing closed", ({ make }) => {
  let kit: StoreKit;
  beforeAll(() => {
    kit = make();
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  it("rejects every pending write with AuditFailure when a table is dropped mid-run, and no action runs", async () => {
    const w = world();
    const store = await kit.open();
    const acted: number[] = [];
    const call = (i: number) => audited(store, w.alice, { action: "fs.read", path: `/srv/data/${String(i)}` }, () => acted.push(i));
    await Promise.all([0, 1, 2].map(call));
    expect(acted).toHaveLength(3);

    await kit.raw("DROP TABLE audit_event_links");
    const results = await Promise.allSettled([3, 4, 5, 6].map(call));
    expect(acted).toHaveLength(3);
    for (const r of results) {
      expect(r.status).toBe("rejected");
      const reason = (r as PromiseRejectedResult).reason as AuditFailure;
      expect(reason).toBeInstanceOf(AuditFailure);
      expect(reason.code).toBe("ERR_AUDIT_FAILURE");
      expect(reason.message).toMatch(/could not write .* fail closed/);
      expect(reason.cause).toBeInstanceOf(Error);
    }
  });

  it("rejects while the store refuses inserts, writes nothing partial, and chains on once it recovers", async () => {
    const w = world();
    const store = await kit.open();
    await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }));
    if (kit.name === "sqlite") {
      await kit.raw("CREATE TRIGGER refuse BEFORE INSERT ON audit_event_links BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    } else {
      await kit.raw("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$");
      await kit.raw("CREATE TRIGGER refuse BEFORE INSERT ON audit_event_links FOR EACH STATEMENT EXECUTE FUNCTION refuse()");
    }
    const refused = await Promise.allSettled([1, 2].map(() => store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }))));
    expect(refused.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(((refused[0] as PromiseRejectedResult).reason as Error).message).toContain("disk full");
    expect(await kit.raw("SELECT seq FROM audit_events")).toHaveLength(1);

    await kit.raw(kit.name === "sqlite" ? "DROP TRIGGER refuse" : "DROP TRIGGER refuse ON audit_event_links");
    await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }));
    expect(await store.verify()).toMatchObject({ ok: true, events: 2 });
  });
});

describe("opening a store", () => {
  it.each([
    [{ kind: "mysql" }, /kind/],
    [{ kind: "sqlite", path: "" }, /path/],
    [{ kind: "sqlite", maxBatch: 0 }, /maxBatch/],
    [{ kind: "sqlite", synchronous: "off" }, /synchronous/],
    [{ kind: "sqlite", extra: 1 }, /extra/],
    [{ kind: "postgres" }, /url/],
    [{ kind: "postgres", url: "postgres://x", schema: "Robert'); DROP TABLE x;--" }, /schema/],
    [{ kind: "sqlite", redaction: { httpQuery: "hide" } }, /httpQuery/],
  ])("refuses bad options %j with InvalidInput", async (options, field) => {
    const error = await openAuditStore(options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(field);
  });

  it("fails with AuditFailure when a read-only log does not exist", async () => {
    await expect(openAuditStore({ kind: "sqlite", path: "/nonexistent/dir/audit.db", readOnly: true })).rejects.toBeInstanceOf(AuditFailure);
  });

  it("refuses a log written by an earlier agentcap (no intents, no Merkle tree), saying to start a new one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentcap-audit-old-"));
    try {
      const path = join(dir, "old.db");
      const old = new Database(path);
      old.exec("CREATE TABLE audit_events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)");
      old.close();
      for (const readOnly of [false, true]) {
        const error = await openAuditStore({ kind: "sqlite", path, readOnly }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(AuditFailure);
        expect((error as Error).message).toMatch(/was written by an earlier version of agentcap.*start a new log/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails with AuditFailure when Postgres cannot be reached", async () => {
    const error = await openAuditStore({ kind: "postgres", url: "postgres://nobody@127.0.0.1:1/none" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditFailure);
    expect((error as Error).message).toMatch(/cannot open the Postgres audit log/);
  });
});

describe("SQLite audit store in memory", () => {
  it("keeps ':memory:' in memory and creates no file of that name", async () => {
    const dir = mkdtempSync(join(tmpdir(), "agentcap-audit-mem-"));
    const cwd = process.cwd();
    process.chdir(dir);
    try {
      const store = await openAuditStore({ kind: "sqlite", path: ":memory:" });
      await store.close();
      expect(existsSync(join(dir, ":memory:"))).toBe(false);
    } finally {
      process.chdir(cwd);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
