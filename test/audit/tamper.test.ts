import { afterAll, beforeAll, expect, it } from "vitest";
import { chainHash } from "../../src/audit/chain.ts";
import type { TamperKind } from "../../src/audit/chain-walker.ts";
import { generateCheckpointKey, memoryCheckpointSink } from "../../src/audit/checkpoint.ts";
import { leafText } from "../../src/audit/encoding.ts";
import { leafHash } from "../../src/audit/proof-verifier.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { canonicalJson } from "../../src/kernel/content-hash.ts";
import { InvalidInput } from "../../src/index.ts";
import { eachKit, eventFor, world, type Row, type StoreKit } from "./fixtures.ts";

/*
 * Tampering with a real log through the database, as someone with access to
 * it would (dropping the append-only triggers first), and what verify says:
 * the chain explains where an entry was changed, and the signed checkpoints,
 * kept outside the database, catch what a careful attacker can make the
 * chain agree with (a truncated end, a deletion with every later hash
 * recomputed, a replaced database).
 */

const KEY = generateCheckpointKey("audit.test/tamper");

interface Log {
  readonly store: AuditStore;
  /** The checkpoints signed at 5 and at 10 entries. */
  readonly notes: readonly string[];
  readonly ids: readonly string[];
  readonly searchToolId: string;
  readonly bobId: string;
}

async function rowAt(kit: StoreKit, seq: number): Promise<Row> {
  const [row] = await kit.raw("SELECT * FROM audit_events WHERE seq = ?", [seq]);
  if (row === undefined) throw new Error(`no row at seq ${String(seq)}`);
  return row;
}

/** The leaf and chain hashes an entry would carry with this body and previous hash, computed as an attacker could. */
async function forgeHash(kit: StoreKit, prev: string, body: string): Promise<{ leaf: string; hash: string }> {
  const ids = (JSON.parse(body) as { subject?: { lineage: string[] } }).subject?.lineage ?? [];
  const texts: string[] = [];
  for (const id of ids) {
    const [link] = await kit.raw("SELECT summary FROM audit_links WHERE id = ?", [id]);
    texts.push(String(link?.summary));
  }
  const leaf = leafHash(leafText(body, texts)).toString("hex");
  return { leaf, hash: chainHash(prev, leaf) };
}

/** Rewrites the leaf and chain hashes of every entry from `seq` on, as a careful attacker would after changing the log. */
async function rechain(kit: StoreKit, seq: number): Promise<void> {
  let prev = seq === 1 ? "0".repeat(64) : String((await rowAt(kit, seq - 1)).hash);
  for (const row of await kit.raw("SELECT seq, body FROM audit_events WHERE seq >= ? ORDER BY seq", [seq])) {
    const { leaf, hash } = await forgeHash(kit, prev, String(row.body));
    await kit.raw("UPDATE audit_events SET leaf = ?, prev_hash = ?, hash = ? WHERE seq = ?", [leaf, prev, hash, row.seq]);
    prev = hash;
  }
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
  /** What the log itself shows: the problems found without the checkpoints. */
  readonly expect: (log: Log) => readonly { kind: TamperKind; seq: number; eventId?: string | null | undefined; message?: RegExp }[];
  /**
   * What the signed checkpoints show besides (the kinds, in order): the roots
   * they signed no longer match, or no consistency proof between them holds
   * once stored leaves were changed; nothing for a change to the indexes
   * alone, which no hash covers.
   */
  readonly signed: readonly TamperKind[];
}

const CASES: readonly Case[] = [
  {
    name: "an edited event",
    tamper: async (kit) => {
      await kit.raw(`UPDATE audit_events SET body = replace(body, '"resultBytes":128', '"resultBytes":0') WHERE seq = 5`);
    },
    expect: (log) => [{ kind: "edited", seq: 5, eventId: log.ids[4], message: /does not match its hash/ }],
    signed: ["rewritten", "rewritten"],
  },
  {
    name: "a query column edited to hide an event",
    tamper: async (kit) => {
      await kit.raw("UPDATE audit_events SET principal = 'mallory' WHERE seq = 5");
    },
    expect: (log) => [{ kind: "index", seq: 5, eventId: log.ids[4], message: /column principal holds "mallory", but the entry says "alice"/ }],
    signed: [],
  },
  {
    name: "an event edited and rehashed",
    tamper: async (kit) => {
      const row = await rowAt(kit, 5);
      const body = String(row.body).replace('"resultBytes":128', '"resultBytes":0');
      const { leaf, hash } = await forgeHash(kit, String(row.prev_hash), body);
      await kit.raw("UPDATE audit_events SET body = ?, leaf = ?, hash = ? WHERE seq = 5", [body, leaf, hash]);
    },
    expect: (log) => [{ kind: "chain-break", seq: 6, eventId: log.ids[5], message: new RegExp(`event ${String(log.ids[4])} \\(seq 5\\), was rewritten`) }],
    signed: ["rewritten", "rewritten", "checkpoint"],
  },
  {
    name: "a deleted event",
    tamper: async (kit) => {
      await kit.raw("DELETE FROM audit_events WHERE seq = 5");
    },
    expect: () => [{ kind: "missing", seq: 5, eventId: null, message: /event seq 5 is missing/ }],
    signed: ["rewritten", "truncated"],
  },
  {
    name: "the tail truncated (the last event deleted)",
    tamper: async (kit) => {
      await kit.raw("DELETE FROM audit_events WHERE seq = 10");
      await kit.raw("DELETE FROM audit_event_links WHERE event_seq = 10");
    },
    expect: () => [],
    signed: ["truncated"],
  },
  {
    name: "an event deleted, later ones renumbered and every hash after it recomputed",
    tamper: async (kit) => {
      await kit.raw("DELETE FROM audit_events WHERE seq = 5");
      await kit.raw("DELETE FROM audit_event_links WHERE event_seq = 5");
      await shiftFrom(kit, 6, -1);
      await rechain(kit, 5);
    },
    expect: () => [],
    signed: ["rewritten", "truncated"],
  },
  {
    name: "the log rewritten from an event to its end, every hash recomputed",
    tamper: async (kit) => {
      const row = await rowAt(kit, 6);
      await kit.raw("UPDATE audit_events SET body = ? WHERE seq = 6", [String(row.body).replace('"resultBytes":128', '"resultBytes":0')]);
      await rechain(kit, 6);
    },
    expect: () => [],
    signed: ["rewritten", "checkpoint"],
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
    signed: ["rewritten", "rewritten", "checkpoint"],
  },
  {
    name: "a forged event inserted, later events renumbered",
    tamper: async (kit) => {
      await shiftFrom(kit, 5, 1);
      const model = await rowAt(kit, 4);
      const body = canonicalJson({ ...(JSON.parse(String(model.body)) as object), id: "forged" });
      const { leaf, hash } = await forgeHash(kit, String(model.hash), body);
      await kit.raw(
        `INSERT INTO audit_events (seq, id, phase, at, tool, action, resource, allowed, principal, request_id, tenant, capability_hash, session_id, task_id, body, leaf, prev_hash, hash)
         SELECT 5, 'forged', phase, at, tool, action, resource, allowed, principal, request_id, tenant, capability_hash, session_id, task_id, ?, ?, ?, ? FROM audit_events WHERE seq = 4`,
        [body, leaf, model.hash, hash],
      );
      await kit.raw("INSERT INTO audit_event_links (link_num, event_seq, position) SELECT link_num, 5, position FROM audit_event_links WHERE event_seq = 4");
    },
    expect: (log) => [{ kind: "inserted", seq: 5, eventId: "forged", message: new RegExp(`event ${String(log.ids[4])} \\(seq 6\\) was written right after event ${String(log.ids[3])} \\(seq 4\\)`) }],
    signed: ["rewritten", "rewritten", "checkpoint"],
  },
  {
    name: "a lineage link edited (every event that used it)",
    tamper: async (kit, log) => {
      await kit.raw(`UPDATE audit_links SET summary = replace(summary, '"search"', '"deploy"') WHERE id = ?`, [log.searchToolId]);
    },
    expect: (log) => [1, 3, 5, 7, 9].map((seq) => ({ kind: "edited" as const, seq, eventId: log.ids[seq - 1] })),
    signed: ["rewritten", "rewritten"],
  },
  {
    name: "a lineage link deleted",
    tamper: async (kit, log) => {
      await kit.raw("DELETE FROM audit_links WHERE id = ?", [log.bobId]);
    },
    expect: (log) => [2, 4, 6, 8, 10].map((seq) => ({ kind: "edited" as const, seq, eventId: log.ids[seq - 1], message: /lineage link .* is missing/ })),
    signed: ["rewritten", "rewritten"],
  },
  {
    name: "an event dropped from the lineage index (hidden from descendant queries)",
    tamper: async (kit) => {
      await kit.raw("DELETE FROM audit_event_links WHERE event_seq = 5 AND position = 0");
    },
    expect: (log) => [{ kind: "index", seq: 5, eventId: log.ids[4], message: /descendant queries would mislead/ }],
    signed: [],
  },
  {
    name: "an event added to another capability's descendants",
    tamper: async (kit, log) => {
      await kit.raw("INSERT INTO audit_event_links (link_num, event_seq, position) SELECT num, 5, 4 FROM audit_links WHERE id = ?", [log.bobId]);
    },
    expect: (log) => [{ kind: "index", seq: 5, eventId: log.ids[4] }],
    signed: [],
  },
];

/** Problem kinds only signed checkpoints can show. */
const SIGNED: readonly TamperKind[] = ["rewritten", "truncated", "checkpoint"];

eachKit("audit store: tamper evidence", ({ make }) => {
  let kit: StoreKit;
  beforeAll(() => {
    kit = make();
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  /** Ten events, alternating Alice's search tool (odd seqs) and Bob's report capability (even seqs), with a checkpoint signed at 5 and at 10. */
  async function tenEvents(): Promise<Log> {
    const w = world();
    const sink = memoryCheckpointSink();
    const store = await kit.open({ checkpoints: { key: KEY.signerKey, sink, everyEntries: 1000 } });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      if (i === 5) await store.checkpoint();
      const event =
        i % 2 === 0
          ? eventFor(w.searchTool, { action: "tool.call", tool: "search" }, { at: 1000 + i })
          : eventFor(w.report, { action: "db.read", model: "Customer", fields: ["name"], scope: { id: i } }, { at: 1000 + i, tool: "run_report" });
      await store.write(event);
      ids.push(event.id);
    }
    await store.checkpoint();
    return { store, notes: sink.notes, ids, searchToolId: w.searchTool.id, bobId: w.bob.id };
  }

  it("refuses UPDATE and DELETE through the append-only triggers", async () => {
    await tenEvents();
    await expect(kit.raw("UPDATE audit_events SET principal = 'x'")).rejects.toThrow(/append-only/);
    await expect(kit.raw("DELETE FROM audit_links")).rejects.toThrow(/append-only/);
  });

  it.each(CASES)("detects $name, and says which", async (c) => {
    const log = await tenEvents();
    expect(log.notes).toHaveLength(2);
    expect(await log.store.verify()).toMatchObject({ ok: true, checkpoints: { checked: 2, latest: 10 } });
    await kit.unlock();
    await c.tamper(kit, log);

    const report = await log.store.verify();
    expect(report.ok).toBe(false);
    expect(report.complete).toBe(true);
    const expected = c.expect(log);
    const own = report.problems.filter((p) => !SIGNED.includes(p.kind));
    expect(own.map(({ kind, seq, eventId }) => ({ kind, seq, eventId }))).toEqual(expected.map(({ kind, seq, eventId }) => ({ kind, seq, eventId: eventId ?? null })));
    own.forEach((p, i) => {
      const message = expected[i]?.message;
      if (message !== undefined) expect(p.message).toMatch(message);
    });
    expect(report.problems.filter((p) => SIGNED.includes(p.kind)).map((p) => p.kind)).toEqual(c.signed);
    // Without its checkpoints, the log can only be checked against itself.
    expect((await log.store.verify({ checkpoints: [] })).problems.map((p) => p.kind)).toEqual(own.map((p) => p.kind));
  });

  it("detects a replaced database: a whole new, self-consistent log in its place", async () => {
    const log = await tenEvents();
    await kit.unlock();
    for (const t of ["audit_events", "audit_links", "audit_event_links", "audit_tree"]) await kit.raw(`DELETE FROM ${t}`);
    // Written through a fresh store, so every hash and the tree are as honest as the original's.
    const w = world();
    const replacement = await kit.open({ again: true });
    for (let i = 0; i < 12; i++) await replacement.write(eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: 5000 + i }));
    expect((await replacement.verify()).ok).toBe(true);
    const report = await log.store.verify();
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.kind)).toEqual(["rewritten", "rewritten", "checkpoint"]);
    expect(report.problems[0]?.message).toMatch(/the first 5 entries no longer hash to the root the checkpoint of size 5 signed/);
  });

  it("refuses a checkpoint whose signature is forged, and checks nothing against a key that signed none", async () => {
    const log = await tenEvents();
    const other = generateCheckpointKey("audit.test/tamper");
    const forged = (log.notes[1] ?? "").replace(/\n\n.*$/s, "\n\n— audit.test/tamper AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n");
    const report = await log.store.verify({ checkpoints: [...log.notes, forged], verifierKey: KEY.verifierKey });
    expect(report.problems.map((p) => p.kind)).toEqual(["checkpoint"]);
    expect(report.problems[0]?.message).toMatch(/a checkpoint was refused/);
    const wrongKey = await log.store.verify({ checkpoints: log.notes, verifierKey: other.verifierKey });
    expect(wrongKey.problems.map((p) => p.kind)).toEqual(["checkpoint", "checkpoint"]);
    expect(wrongKey.problems[0]?.message).toMatch(/no signature by audit\.test\/tamper|does not verify/);
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
    [{ checkpoints: ["x"] }, /verifierKey/],
    [{ checkpoints: "x" }, /checkpoints/],
    [{ anchor: { seq: 1, hash: "0".repeat(64) } }, /anchor/],
    [{ maxProblems: 0 }, /maxProblems/],
    [{ verbose: true }, /verbose/],
  ])("refuses bad verify options %j with InvalidInput", async (options, field) => {
    const store = await kit.open();
    const error = await store.verify(options as never).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInput);
    expect((error as Error).message).toMatch(field);
  });
});
