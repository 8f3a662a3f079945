import { afterAll, beforeAll, expect, it } from "vitest";
import { chainHash } from "../../src/audit/chain.ts";
import type { TamperKind } from "../../src/audit/chain-walker.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { canonicalJson } from "../../src/kernel/content-hash.ts";
import { InvalidInput } from "../../src/index.ts";
import { eachKit, eventFor, world, type Row, type StoreKit } from "./fixtures.ts";

/*
 * Tampering with a real log through the database, as someone with access to
 * it would (dropping the append-only triggers first), and what verify says.
 */

interface Log {
  readonly store: AuditStore;
  readonly ids: readonly string[];
  readonly searchToolId: string;
  readonly bobId: string;
}

async function rowAt(kit: StoreKit, seq: number): Promise<Row> {
  const [row] = await kit.raw("SELECT * FROM audit_events WHERE seq = ?", [seq]);
  if (row === undefined) throw new Error(`no row at seq ${String(seq)}`);
  return row;
}

/** The hash an event would carry with this body and previous hash, computed as an attacker could. */
async function forgeHash(kit: StoreKit, prev: string, body: string): Promise<string> {
  const ids = (JSON.parse(body) as { subject: { lineage: string[] } }).subject.lineage;
  const texts: string[] = [];
  for (const id of ids) {
    const [link] = await kit.raw("SELECT summary FROM audit_links WHERE id = ?", [id]);
    texts.push(String(link?.summary));
  }
  return chainHash(prev, body, texts);
}

async function shiftFrom(kit: StoreKit, seq: number, by: number): Promise<void> {
  // Through a distant range, so the primary key never collides mid-update.
  await kit.raw("UPDATE audit_events SET seq = seq + 1000000 WHERE seq >= ?", [seq]);
  await kit.raw("UPDATE audit_events SET seq = seq - 1000000 + ? WHERE seq >= 1000000", [by]);
  await kit.raw("UPDATE audit_event_links SET event_seq = event_seq + 1000000 WHERE event_seq >= ?", [seq]);
  await kit.raw("UPDATE audit_event_links SET event_seq = event_seq - 1000000 + ? WHERE event_seq >= 1000000", [by]);
}

interface Case {
  readonly name: string;
  readonly tamper: (kit: StoreKit, log: Log) => Promise<void>;
  /** Verify with the head noted before tampering. */
  readonly anchored?: boolean;
  readonly expect: (log: Log) => readonly { kind: TamperKind; seq: number; eventId?: string | null | undefined; message?: RegExp }[];
}

const CASES: readonly Case[] = [
  {
    name: "an edited event",
    tamper: async (kit) => {
      await kit.raw(`UPDATE audit_events SET body = replace(body, '"resultBytes":128', '"resultBytes":0') WHERE seq = 5`);
    },
    expect: (log) => [{ kind: "edited", seq: 5, eventId: log.ids[4], message: /does not match its hash/ }],
  },
  {
    name: "a query column edited to hide an event",
    tamper: async (kit) => {
      await kit.raw("UPDATE audit_events SET principal = 'mallory' WHERE seq = 5");
    },
    expect: (log) => [{ kind: "index", seq: 5, eventId: log.ids[4], message: /column principal holds "mallory", but the event says "alice"/ }],
  },
  {
    name: "an event edited and rehashed",
    tamper: async (kit) => {
      const row = await rowAt(kit, 5);
      const body = String(row.body).replace('"resultBytes":128', '"resultBytes":0');
      await kit.raw("UPDATE audit_events SET body = ?, hash = ? WHERE seq = 5", [body, await forgeHash(kit, String(row.prev_hash), body)]);
    },
    expect: (log) => [{ kind: "chain-break", seq: 6, eventId: log.ids[5], message: new RegExp(`event ${String(log.ids[4])} \\(seq 5\\), was rewritten`) }],
  },
  {
    name: "a deleted event",
    tamper: async (kit) => {
      await kit.raw("DELETE FROM audit_events WHERE seq = 5");
    },
    expect: () => [{ kind: "missing", seq: 5, eventId: null, message: /event seq 5 is missing/ }],
  },
  {
    name: "the last event deleted (caught by the anchor)",
    anchored: true,
    tamper: async (kit) => {
      await kit.raw("DELETE FROM audit_events WHERE seq = 10");
    },
    expect: () => [{ kind: "truncated", seq: 10, eventId: null }],
  },
  {
    name: "the log rewritten from an event to its end (caught by the anchor)",
    anchored: true,
    tamper: async (kit) => {
      let prev = String((await rowAt(kit, 6)).prev_hash);
      for (let seq = 6; seq <= 10; seq++) {
        const row = await rowAt(kit, seq);
        const body = seq === 6 ? String(row.body).replace('"resultBytes":128', '"resultBytes":0') : String(row.body);
        const hash = await forgeHash(kit, prev, body);
        await kit.raw("UPDATE audit_events SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?", [body, prev, hash, seq]);
        prev = hash;
      }
    },
    expect: (log) => [{ kind: "rewritten", seq: 10, eventId: log.ids[9] }],
  },
  {
    name: "two events swapped",
    tamper: async (kit) => {
      await kit.raw("UPDATE audit_events SET seq = -1 WHERE seq = 4");
      await kit.raw("UPDATE audit_events SET seq = 4 WHERE seq = 5");
      await kit.raw("UPDATE audit_events SET seq = 5 WHERE seq = -1");
      await kit.raw("UPDATE audit_event_links SET event_seq = -1 WHERE event_seq = 4");
      await kit.raw("UPDATE audit_event_links SET event_seq = 4 WHERE event_seq = 5");
      await kit.raw("UPDATE audit_event_links SET event_seq = 5 WHERE event_seq = -1");
    },
    expect: (log) => [
      { kind: "reordered", seq: 4, eventId: log.ids[4], message: new RegExp(`written after event ${String(log.ids[3])} \\(seq 5\\), but is stored before it`) },
      { kind: "reordered", seq: 5, eventId: log.ids[3] },
      { kind: "reordered", seq: 6, eventId: log.ids[5] },
    ],
  },
  {
    name: "a forged event inserted, later events renumbered",
    tamper: async (kit) => {
      await shiftFrom(kit, 5, 1);
      const model = await rowAt(kit, 4);
      const body = canonicalJson({ ...(JSON.parse(String(model.body)) as object), id: "forged" });
      const hash = await forgeHash(kit, String(model.hash), body);
      await kit.raw(
        `INSERT INTO audit_events (seq, id, at, tool, action, resource, allowed, principal, request_id, tenant, capability_hash, session_id, task_id, body, prev_hash, hash)
         SELECT 5, 'forged', at, tool, action, resource, allowed, principal, request_id, tenant, capability_hash, session_id, task_id, ?, ?, ? FROM audit_events WHERE seq = 4`,
        [body, model.hash, hash],
      );
      await kit.raw("INSERT INTO audit_event_links (link_num, event_seq, position) SELECT link_num, 5, position FROM audit_event_links WHERE event_seq = 4");
    },
    expect: (log) => [{ kind: "inserted", seq: 5, eventId: "forged", message: new RegExp(`event ${String(log.ids[4])} \\(seq 6\\) was written right after event ${String(log.ids[3])} \\(seq 4\\)`) }],
  },
  {
    name: "a lineage link edited (every event that used it)",
    tamper: async (kit, log) => {
      await kit.raw(`UPDATE audit_links SET summary = replace(summary, '"search"', '"deploy"') WHERE id = ?`, [log.searchToolId]);
    },
    expect: (log) => [1, 3, 5, 7, 9].map((seq) => ({ kind: "edited" as const, seq, eventId: log.ids[seq - 1] })),
  },
  {
    name: "a lineage link deleted",
    tamper: async (kit, log) => {
      await kit.raw("DELETE FROM audit_links WHERE id = ?", [log.bobId]);
    },
    expect: (log) => [2, 4, 6, 8, 10].map((seq) => ({ kind: "edited" as const, seq, eventId: log.ids[seq - 1], message: /lineage link .* is missing/ })),
  },
  {
    name: "an event dropped from the lineage index (hidden from descendant queries)",
    tamper: async (kit) => {
      await kit.raw("DELETE FROM audit_event_links WHERE event_seq = 5 AND position = 0");
    },
    expect: (log) => [{ kind: "index", seq: 5, eventId: log.ids[4], message: /descendant queries would mislead/ }],
  },
  {
    name: "an event added to another capability's descendants",
    tamper: async (kit, log) => {
      await kit.raw("INSERT INTO audit_event_links (link_num, event_seq, position) SELECT num, 5, 4 FROM audit_links WHERE id = ?", [log.bobId]);
    },
    expect: (log) => [{ kind: "index", seq: 5, eventId: log.ids[4] }],
  },
];

eachKit("audit store: tamper evidence", ({ make }) => {
  let kit: StoreKit;
  beforeAll(() => {
    kit = make();
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  /** Ten events, alternating Alice's search tool (odd seqs) and Bob's report capability (even seqs). */
  async function tenEvents(): Promise<Log> {
    const w = world();
    const store = await kit.open();
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const event =
        i % 2 === 0
          ? eventFor(w.searchTool, { action: "tool.call", tool: "search" }, { at: 1000 + i })
          : eventFor(w.report, { action: "db.read", model: "Customer", fields: ["name"], scope: { id: i } }, { at: 1000 + i, tool: "run_report" });
      await store.write(event);
      ids.push(event.id);
    }
    return { store, ids, searchToolId: w.searchTool.id, bobId: w.bob.id };
  }

  it("refuses UPDATE and DELETE through the append-only triggers", async () => {
    await tenEvents();
    await expect(kit.raw("UPDATE audit_events SET principal = 'x'")).rejects.toThrow(/append-only/);
    await expect(kit.raw("DELETE FROM audit_links")).rejects.toThrow(/append-only/);
  });

  it.each(CASES)("detects $name, and says which", async (c) => {
    const log = await tenEvents();
    const anchor = (await log.store.head()) ?? undefined;
    expect((await log.store.verify(anchor === undefined ? {} : { anchor })).ok).toBe(true);
    await kit.unlock();
    await c.tamper(kit, log);

    const report = await log.store.verify(c.anchored === true && anchor !== undefined ? { anchor } : {});
    expect(report.ok).toBe(false);
    expect(report.complete).toBe(true);
    const expected = c.expect(log);
    expect(report.problems.map(({ kind, seq, eventId }) => ({ kind, seq, eventId }))).toEqual(
      expected.map(({ kind, seq, eventId }) => ({ kind, seq, eventId: eventId ?? null })),
    );
    report.problems.forEach((p, i) => {
      const message = expected[i]?.message;
      if (message !== undefined) expect(p.message).toMatch(message);
    });
  });

  it("misses nothing but stops at maxProblems and says it stopped", async () => {
    const log = await tenEvents();
    await kit.unlock();
    await kit.raw("UPDATE audit_events SET principal = 'mallory'");
    const report = await log.store.verify({ maxProblems: 3 });
    expect(report).toMatchObject({ ok: false, complete: false });
    expect(report.problems).toHaveLength(3);
  });

  it.each([
    [{ anchor: { seq: 0, hash: "0".repeat(64) } }, /anchor.seq/],
    [{ anchor: { seq: 1, hash: "abc" } }, /anchor.hash/],
    [{ maxProblems: 0 }, /maxProblems/],
    [{ verbose: true }, /verbose/],
  ])("refuses bad verify options %j with InvalidInput", async (options, field) => {
    const store = await kit.open();
    const error = await store.verify(options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(field);
  });
});
