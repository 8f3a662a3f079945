import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { AuditStore } from "../../src/audit/store.ts";
import type { AuditIntent, AuditSink } from "../../src/kernel/audit-sink.ts";
import { AuditFailure, createMint, InvalidInput, type Capability } from "../../src/index.ts";
import { createFileSystem } from "../../src/resources/fs/file-system.ts";
import { fileTools } from "../../src/tools/builtin/files.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { eachKit, eventFor, intentOf, world, type StoreKit } from "./fixtures.ts";

/*
 * Record, then act, against the real stores: a burst of file writes through
 * the dispatcher while the store fails in the middle of it (SQLite: another
 * process holds the write lock past busy_timeout; Postgres: the events table
 * is dropped). Every file that exists has a durable intent; every call that
 * could not record one failed with AuditFailure and wrote nothing.
 */

/** The store, noting every intent it has made durable (its promise resolved). */
function watched(store: AuditStore): { sink: AuditSink; durable: AuditIntent[] } {
  const durable: AuditIntent[] = [];
  return {
    durable,
    sink: {
      intend: async (intent) => {
        await store.intend(intent);
        durable.push(intent);
      },
      complete: (c) => store.complete(c),
      write: (e) => store.write(e),
    },
  };
}

eachKit("audit store: record, then act", ({ name, make }) => {
  let kit: StoreKit;
  let dir: string;
  beforeAll(() => {
    kit = make();
    dir = mkdtempSync(join(tmpdir(), "agentcap-record-"));
  });
  afterAll(async () => {
    await kit.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const writer = (): Capability => createMint({ issuer: "burst", policy: () => ({ tools: ["write_file"], fs: [{ path: dir, ops: ["write"] }] }) }).issue({ id: "alice" });

  it("leaves no file without a durable intent when the store fails mid-burst", async () => {
    const store = await kit.open(name === "sqlite" ? { busyTimeoutMs: 50 } : {});
    const { sink, durable } = watched(store);
    const files = fileTools(createFileSystem({ baseDir: dir, audit: sink }));
    const dispatcher = createDispatcher({ tools: [files.write], audit: sink });
    const cap = writer();
    const wave = (n: number) =>
      Promise.allSettled(Array.from({ length: 20 }, (_, i) => dispatcher.call("write_file", { path: `w${String(n)}-${String(i)}.txt`, content: "x" }, cap)));

    const first = await wave(1);
    expect(first.every((r) => r.status === "fulfilled")).toBe(true);
    // The store fails: another process holds the write lock past busy_timeout, or the table is gone.
    if (name === "sqlite") await kit.raw("BEGIN IMMEDIATE");
    else await kit.raw("DROP TABLE audit_events CASCADE");
    const second = await wave(2);
    if (name === "sqlite") await kit.raw("COMMIT");
    expect(second.every((r) => r.status === "rejected" && r.reason instanceof AuditFailure)).toBe(true);
    if (name === "sqlite") {
      const third = await wave(3);
      expect(third.every((r) => r.status === "fulfilled")).toBe(true);
    }

    const written = readdirSync(dir).filter((f) => f.endsWith(".txt"));
    const intended = new Set(durable.filter((i) => i.request.action === "fs.write").map((i) => (i.request as { path: string }).path));
    expect(written.length).toBe(name === "sqlite" ? 40 : 20);
    expect(written.filter((f) => !intended.has(join(dir, f)))).toEqual([]);
    expect(readdirSync(dir).some((f) => f.startsWith("w2-"))).toBe(false);
    if (name === "sqlite") {
      const report = await store.verify();
      expect(report).toMatchObject({ ok: true, openIntentCount: 0 });
      expect((await store.query({ action: "fs.write", limit: 100 })).map((r) => r.event.outcome?.ok)).toEqual(Array.from({ length: 40 }, () => true));
    }
  });

  it("shows an intent whose outcome never came (a crash after acting) as such, in query and verify", async () => {
    const w = world();
    const store = await kit.open();
    const intent = intentOf(eventFor(w.alice, { action: "fs.write", path: "/srv/data/out.txt" }));
    await store.intend(intent);
    await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }));
    // The process that recorded the intent is gone; another opens the log.
    const reopened = await kit.open({ again: true });
    const [record] = await reopened.query({ action: "fs.write" });
    expect(record).toMatchObject({ seq: 1, outcomeSeq: null, event: { id: intent.id, outcome: null, durationMs: null } });
    const report = await reopened.verify();
    expect(report).toMatchObject({ ok: true, openIntentCount: 1, openIntents: [{ seq: 1, id: intent.id }] });
  });

  it("refuses an intent it cannot encode before anything is recorded, and a completion of an intent it never recorded", async () => {
    const w = world();
    const store = await kit.open();
    const intent = intentOf(eventFor(w.alice, { action: "fs.read", path: "/srv/data/a" }));
    await expect(store.intend({ ...intent, subject: { ...intent.subject, lineage: [...intent.subject.lineage, ...intent.subject.lineage] } })).rejects.toThrow(InvalidInput);
    await expect(store.intend({ ...intent, decision: { ...intent.decision, allowed: false } as never })).rejects.toThrow(InvalidInput);
    await expect(store.complete({ id: "never-intended", durationMs: 1, outcome: { ok: true, resultBytes: 0 } })).rejects.toThrow(/no audit intent never-intended/);
    expect(await store.query()).toEqual([]);
    await store.intend(intent);
    await expect(store.intend(intent)).rejects.toThrow(/already waiting for its outcome/);
    await expect(store.complete({ id: intent.id, durationMs: -1, outcome: { ok: true, resultBytes: 0 } })).rejects.toThrow(InvalidInput);
    // A refused completion leaves the intent waiting, to be completed properly.
    await store.complete({ id: intent.id, durationMs: 1, outcome: { ok: true, resultBytes: 3 } });
    expect((await store.query()).map((r) => r.event.outcome)).toEqual([{ ok: true, resultBytes: 3 }]);
  });

  it("files a denial met while acting under --denied, with the request it was met on", async () => {
    const w = world();
    const store = await kit.open();
    const intent = intentOf(eventFor(w.alice, { action: "fs.read", path: "/srv/data/link" }));
    await store.intend(intent);
    const swapped = { action: "fs.read" as const, path: "/etc/shadow" };
    const denial = { allowed: false as const, code: "ERR_CAPABILITY_DENIED" as const, capabilityId: w.alice.id, link: 0, linkId: w.alice.id, rule: "fs", because: "does not grant read on /etc/shadow", reason: "root does not grant read on /etc/shadow" };
    await store.complete({ id: intent.id, durationMs: 1, outcome: { ok: false, errorCode: "ERR_CAPABILITY_DENIED", message: "denied" }, denial: { request: swapped, decision: denial } });
    const [denied] = await store.query({ decision: "denied" });
    expect(denied).toMatchObject({ seq: 2, outcomeSeq: 2, event: { id: intent.id, request: swapped, decision: { allowed: false } } });
    expect(await store.query({ decision: "allowed" })).toHaveLength(1);
  });
});

eachKit("audit store that is closed", ({ make }) => {
  it("refuses intents, so nothing acts", async () => {
    const kit = make();
    const store = await kit.open();
    await store.close();
    const w = world();
    const intent = intentOf(eventFor(w.alice, { action: "fs.read", path: "/srv/data/a" }));
    await expect(store.intend(intent)).rejects.toThrow(AuditFailure);
    await kit.cleanup();
  });
});
