import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import { compileRedaction } from "../../src/audit/redaction.ts";
import { openSqliteBackend } from "../../src/audit/sqlite-store.ts";
import { createAuditStore, type AuditStore } from "../../src/audit/store.ts";
import type { AuditIntent, AuditSink } from "../../src/kernel/audit-sink.ts";
import { AuditFailure, createMint } from "../../src/index.ts";
import { createFileSystem } from "../../src/resources/fs/file-system.ts";
import { fileTools } from "../../src/tools/builtin/files.ts";
import { defineTool } from "../../src/tools/define.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { z } from "zod";
import { holdIntent } from "../../src/kernel/held-intents.ts";
import { caretaker } from "../../src/kernel/internal.ts";
import { createSqlDatabase } from "../../src/resources/sql/database.ts";
import { capabilities, ENGINES, SCHEMA, type Harness } from "../resources/sql-fixture.ts";
import { memorySink } from "./memory-sink.ts";

/*
 * What the durable audit of one call costs the store: a built-in tool's call
 * (its intent, and the intent of the file access it makes) is one
 * transaction, and its outcomes ride with the next call's instead of a
 * transaction of their own. Record, then act still holds: nothing is done
 * before the call's intent is durable, and a call whose intent cannot be
 * recorded does nothing.
 */

const root = realpathSync(mkdtempSync(join(tmpdir(), "agentcap-writes-")));
writeFileSync(join(root, "report.txt"), "Q3 revenue grew 12%.");
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});
afterEach(() => {
  vi.useRealTimers();
});

/** One store transaction: the entries it held, as `phase action` of each call's events. */
type Batch = readonly { readonly id: string; readonly phase: number; readonly action: string }[];

/** A SQLite audit store that notes every transaction it writes. */
function countingStore(): { store: AuditStore; batches: Batch[] } {
  const backend = openSqliteBackend({ path: join(root, `audit-${String(Math.random()).slice(2)}.db`), synchronous: "normal" });
  const batches: Batch[] = [];
  const store = createAuditStore(
    {
      ...backend,
      append: (batch) => {
        batches.push(batch.map((e) => ({ id: e.columns.id, phase: e.columns.phase, action: e.columns.action })));
        return backend.append(batch);
      },
    },
    compileRedaction(),
  );
  return { store, batches };
}

function setup(audit: AuditSink, files = createFileSystem({ baseDir: root, audit })) {
  const tools = fileTools(files);
  const mint = createMint({ issuer: "t", policy: () => ({ tools: ["read_file", "write_file", "note"], fs: [{ path: root, ops: ["read", "write"] }] }) });
  return { tools, cap: mint.issue({ id: "alice" }), dispatcher: createDispatcher({ tools: [tools.read, tools.write], audit }) };
}

const INTENT = 1;
const OUTCOME = 2;

describe("store transactions per call", () => {
  it("writes a built-in tool call's intent and its file access's intent in one transaction, its outcomes with the next call's", async () => {
    // Deferred outcomes are flushed on their own only after a while; here that while never ends, so every flush below is a writer's.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store, batches } = countingStore();
    const { dispatcher, cap } = setup(store);
    const calls = 12;
    for (let i = 0; i < calls; i++) await dispatcher.call("read_file", { path: "report.txt" }, cap);
    // One transaction per call, each holding both intents of that call (and the previous call's outcomes).
    expect(batches).toHaveLength(calls);
    for (const [i, batch] of batches.entries()) {
      const intents = batch.filter((e) => e.phase === INTENT);
      expect(intents.map((e) => e.action)).toEqual(["tool.call", "fs.read"]);
      expect(batch.filter((e) => e.phase === OUTCOME)).toHaveLength(i === 0 ? 0 : 2);
    }
    await store.close();
    // The last call's outcomes go with the close.
    expect(batches).toHaveLength(calls + 1);
    expect(batches.at(-1)?.map((e) => e.phase)).toEqual([OUTCOME, OUTCOME]);
  });

  it("shares one transaction among concurrent calls' intents, and never splits one call's", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store, batches } = countingStore();
    const { dispatcher, cap } = setup(store);
    const calls = 40;
    await Promise.all(Array.from({ length: calls }, (_, i) => dispatcher.call("write_file", { path: `w${String(i)}.txt`, content: "x" }, cap)));
    const intentBatches = batches.filter((b) => b.some((e) => e.phase === INTENT));
    // Outcomes never cost a transaction of their own while calls keep coming.
    expect(batches.length).toBe(intentBatches.length);
    expect(intentBatches.length).toBeLessThanOrEqual(calls);
    // A call split over two transactions would leave one with a tool intent more than file intents, and the next with one fewer.
    for (const batch of intentBatches) {
      const intents = batch.filter((e) => e.phase === INTENT);
      expect(intents.filter((e) => e.action === "tool.call").length).toBe(intents.filter((e) => e.action === "fs.write").length);
    }
    expect(intentBatches.flat().filter((e) => e.phase === INTENT)).toHaveLength(2 * calls);
    expect((await store.verify()).ok).toBe(true);
    await store.close();
  });

  it("keeps writing the intent of a tool the application defines before its handler runs, in a transaction of its own", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { store, batches } = countingStore();
    const seen: number[] = [];
    const note = defineTool({ name: "note", description: "Notes how many transactions were written when it ran.", input: z.object({}), needs: () => [] }, () => {
      seen.push(batches.length);
      return "ok";
    });
    const mint = createMint({ issuer: "t", policy: () => ({ tools: ["note"] }) });
    const dispatcher = createDispatcher({ tools: [note], audit: store });
    await dispatcher.call("note", {}, mint.issue({ id: "alice" }));
    // Its handler might act by itself, outside any resource: its intent was durable before it ran.
    expect(seen).toEqual([1]);
    expect(batches[0]?.map((e) => [e.phase, e.action])).toEqual([[INTENT, "tool.call"]]);
    await store.close();
  });
});

describe("a built-in tool's intent held until its first access", () => {
  it("is durable before the file is written, even by a resource that records nothing itself", async () => {
    const sink = memorySink();
    let release!: () => void;
    const slow: AuditSink = {
      ...sink,
      intend: async (intent: AuditIntent) => {
        if (intent.kind === "tool") await new Promise<void>((resolve) => (release = resolve));
        await sink.intend(intent);
      },
    };
    // The file system records nothing: the tool's intent is the only record, and it comes first.
    const { dispatcher, cap } = setup(slow, createFileSystem({ baseDir: root }));
    const target = join(root, "held.txt");
    const call = dispatcher.call("write_file", { path: target, content: "x" }, cap);
    await vi.waitFor(() => {
      expect(release).toBeTypeOf("function");
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(existsSync(target)).toBe(false);
    release();
    await expect(call).resolves.toEqual({ path: target, bytes: 1 });
    expect(existsSync(target)).toBe(true);
    expect(sink.toolEvents().map((e) => e.outcome.ok)).toEqual([true]);
  });

  it("stops the access when it cannot be recorded: nothing is done and the call fails with AuditFailure", async () => {
    const sink = memorySink();
    const failing: AuditSink = {
      ...sink,
      intend: async (intent: AuditIntent) => {
        if (intent.kind === "tool") throw new Error("disk full");
        await sink.intend(intent);
      },
    };
    const { dispatcher, cap } = setup(failing);
    const target = join(root, "refused.txt");
    const error = await dispatcher.call("write_file", { path: target, content: "x" }, cap).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditFailure);
    expect((error as Error).message).toBe("the audit sink could not record the intent of the call to tool write_file, so nothing it asked for was done: disk full");
    expect(existsSync(target)).toBe(false);
    // The access's own intent was recorded before the tool's failed: it is completed with the failure, not left open.
    expect(sink.pending()).toEqual([]);
    expect(sink.events.map((e) => [e.request.action, e.outcome.ok])).toEqual([["fs.write", false]]);
  });
});

describe("a synchronous access under a held intent", () => {
  /** Runs `test` against a fresh SQLite database of the SQL fixture. */
  const withSqlite = async (test: (db: ReturnType<typeof createSqlDatabase>, h: Harness) => Promise<void>) => {
    const sqlite = ENGINES.find((e) => e.name === "sqlite");
    if (sqlite === undefined) throw new Error("the SQLite fixture is missing");
    const h = await sqlite.open();
    try {
      await h.reset();
      await test(createSqlDatabase({ schema: SCHEMA, ...h.connection }), h);
    } finally {
      await h.close();
    }
  };

  it("fails closed until the intent is durable, without reading, then reads", async () => {
    await withSqlite(async (db, h) => {
      const lease = caretaker(capabilities().agent, { tool: "report" });
      let durable!: () => void;
      const flush = holdIntent(lease.capability, () => new Promise<void>((resolve) => (durable = resolve)));
      h.clearCounts();
      expect(() => db.readSync(lease.capability, { model: "Customer", fields: ["id"], where: { id: 1 } })).toThrow(/whose intent is not recorded yet/);
      expect(h.executed()).toBe(0);
      // The refused access started the write; once it is durable, reads go ahead.
      durable();
      await flush();
      await Promise.resolve();
      expect(db.readSync(lease.capability, { model: "Customer", fields: ["id"], where: { id: 1 } })).toEqual([{ id: 1 }]);
    });
  });

  it("keeps refusing under every hold still pending when another one becomes durable, or a newer one replaces it", async () => {
    await withSqlite(async (db, h) => {
      const query = { model: "Customer", fields: ["id"], where: { id: 1 } } as const;
      const first = caretaker(capabilities().agent, { tool: "first" }).capability;
      const second = caretaker(capabilities().agent, { tool: "second" }).capability;
      const failing = caretaker(capabilities().agent, { tool: "failing" }).capability;
      const flushFirst = holdIntent(first, () => Promise.resolve());
      let durable!: () => void;
      holdIntent(second, () => new Promise<void>((resolve) => (durable = resolve)));
      const flushFailing = holdIntent(failing, () => Promise.reject(new Error("the store is down")));
      await flushFirst();
      await Promise.resolve();
      h.clearCounts();
      expect(db.readSync(first, query)).toEqual([{ id: 1 }]);
      expect(() => db.readSync(second, query)).toThrow(/whose intent is not recorded yet/);
      await expect(flushFailing()).rejects.toThrow("the store is down");
      expect(() => db.readSync(failing, query)).toThrow(/whose intent is not recorded yet/);
      // A capability held again while its first hold is written: the first one's write does not release the second.
      const flushOld = holdIntent(first, () => Promise.resolve());
      void flushOld();
      let durableAgain!: () => void;
      const flushNew = holdIntent(first, () => new Promise<void>((resolve) => (durableAgain = resolve)));
      await Promise.resolve();
      await Promise.resolve();
      expect(() => db.readSync(first, query)).toThrow(/whose intent is not recorded yet/);
      expect(h.executed()).toBe(1);
      durable();
      const pendingNew = flushNew();
      durableAgain();
      await pendingNew;
      await Promise.resolve();
      expect(db.readSync(second, query)).toEqual([{ id: 1 }]);
      expect(db.readSync(first, query)).toEqual([{ id: 1 }]);
    });
  });
});
