import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpointKey, memoryCheckpointSink, parseSignerKey, signCheckpoint } from "../../src/audit/checkpoint.ts";
import { frontierSlots } from "../../src/audit/merkle.ts";
import { nodeHash, retentionLines, verifyCheckpoint, verifyExport, verifyProof, type ExportLine } from "../../src/audit/proof-verifier.ts";
import { retentionCutoff } from "../../src/audit/retention.ts";
import type { StreamLine } from "../../src/audit/otlp.ts";
import type { AuditStore } from "../../src/audit/store.ts";
import { verifyStream } from "../../src/audit/stream-verifier.ts";
import type { TamperKind } from "../../src/audit/chain-walker.ts";
import { AuditFailure, InvalidInput } from "../../src/index.ts";
import { eachKit, eventFor, HOUR, intentOf, T0, world, type StoreKit } from "./fixtures.ts";

/*
 * Retention by age on both engines: a prune deletes the oldest entries and
 * signs itself as a retention checkpoint, from which what remains verifies
 * with the public key alone (verify, export, the stream verifier), while a
 * deletion or an edit made any other way is still reported.
 */

const KEY = generateCheckpointKey("audit.test/retention");
const OTHER = generateCheckpointKey("audit.test/retention");
const DAY = 24 * HOUR;

/** A store signing into an in-memory sink, streaming every line it would ship into `lines`. */
async function openLog(kit: StoreKit, again = false) {
  const sink = memoryCheckpointSink();
  const lines: StreamLine[] = [];
  const store = await kit.open({
    ...(again ? { again: true } : {}),
    checkpoints: { key: KEY.signerKey, sink, everyEntries: 5 },
    stream: { push: (l: readonly StreamLine[]) => lines.push(...l) },
  });
  return { store, sink, lines };
}

/** `n` whole events, the i-th (from 0) `n - i` days old relative to T0 + 100 days, so entry seq i + 1 began at T0 + i days. */
async function writeDays(store: AuditStore, n: number, from = 0): Promise<string[]> {
  const w = world();
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const e = eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: T0 + i * DAY });
    ids.push(e.id);
    await store.write(e);
  }
  return ids;
}

async function exportLines(store: AuditStore): Promise<string[]> {
  const out: string[] = [];
  for await (const line of store.exportEntries()) out.push(JSON.stringify(line satisfies ExportLine));
  return out;
}

const streamed = (lines: readonly StreamLine[], keep: (l: StreamLine) => boolean = () => true) => lines.filter(keep).map((l) => JSON.stringify(l));

describe("retentionCutoff", () => {
  const now = Date.UTC(2026, 0, 1);
  it.each([
    ["90d", now - 90 * DAY],
    ["12h", now - 12 * HOUR],
    ["30m", now - 30 * 60_000],
    ["2w", now - 14 * DAY],
    [" 45s ", now - 45_000],
    ["2025-01-15", Date.UTC(2025, 0, 15)],
    ["2025-01-15T09:00Z", Date.UTC(2025, 0, 15, 9)],
  ])("reads %j as an age before now or a date", (text, expected) => {
    expect(retentionCutoff(text, now)).toBe(expected);
  });

  it.each([
    ["0d", /zero/],
    ["0s", /zero/],
    ["-5d", /negative/],
    ["-1", /negative/],
    ["", /not a retention age or date/],
    ["ninety days", /not a retention age or date/],
    ["5y", /not a retention age or date/],
    ["1.5d", /not a retention age or date/],
    ["2025-13-45", /not a retention age or date/],
    ["yesterday", /not a retention age or date/],
    ["2027-01-01", /in the future/],
  ])("refuses %j with InvalidInput", (text, message) => {
    expect(() => retentionCutoff(text, now)).toThrow(InvalidInput);
    expect(() => retentionCutoff(text, now)).toThrow(message);
  });
});

describe("a retention checkpoint", () => {
  const signer = parseSignerKey(KEY.signerKey);
  const frontier = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
  const root = nodeHash(frontier[0] as Buffer, frontier[1] as Buffer);
  const lines = retentionLines({ upTo: 5, before: T0, at: T0 + DAY, chainHash: "c".repeat(64), frontier });
  const sign = (size: number, extensions: readonly string[], r = root) => signCheckpoint(signer, "audit.test/retention", size, r, extensions);

  it("is a checkpoint of the size it pruned, which says what it pruned", () => {
    expect(verifyCheckpoint(sign(5, lines), KEY.verifierKey)).toMatchObject({ ok: true, value: { size: 5, retention: { upTo: 5, before: T0, at: T0 + DAY, chainHash: "c".repeat(64) } } });
    // A plain checkpoint has none.
    expect(verifyCheckpoint(sign(5, []), KEY.verifierKey)).toMatchObject({ ok: true, value: { size: 5 } });
    expect((verifyCheckpoint(sign(5, []), KEY.verifierKey) as { value: object }).value).not.toHaveProperty("retention");
  });

  it.each([
    ["it has more subtrees than its size is made of", sign(4, retentionLines({ upTo: 4, before: T0, at: T0, chainHash: "c".repeat(64), frontier })), /subtrees do not hash/],
    ["its range does not match its size", sign(5, [lines[0]?.replace("1-5", "1-4") ?? "", ...lines.slice(1)]), /its own size/],
    ["a subtree is missing", sign(5, [...lines.slice(0, 2), `frontier ${(frontier[0] as Buffer).toString("base64")}`]), /subtrees do not hash/],
    ["its subtrees hash to another root", sign(5, lines, Buffer.alloc(32, 9)), /subtrees do not hash/],
    ["a line is missing", sign(5, lines.slice(0, 2)), /extension lines are/],
    ["its cutoff is not a time", sign(5, [lines[0]?.replace(/before \S+/, "before soon") ?? "", ...lines.slice(1)]), /extension lines are/],
    ["its chain hash is not hex", sign(5, [lines[0] ?? "", "chain xyz", lines[2] ?? ""]), /extension lines are/],
  ])("is refused when %s", (_, note, reason) => {
    expect(verifyCheckpoint(note, KEY.verifierKey)).toMatchObject({ ok: false, reason: expect.stringMatching(reason) as unknown });
  });
});

eachKit("audit retention", ({ make }) => {
  let kit: StoreKit;
  beforeAll(() => {
    kit = make();
  });
  afterAll(async () => {
    await kit.cleanup();
  });

  it("prunes the entries older than the cutoff, and what remains verifies, queries, proves and exports", async () => {
    const { store, sink, lines } = await openLog(kit);
    const ids = await writeDays(store, 20);
    const report = await store.prune({ before: T0 + 10 * DAY });
    expect(report).toMatchObject({ pruned: 10, from: 1, upTo: 10, before: T0 + 10 * DAY, heldBack: null });
    const note = report.checkpoint ?? "";
    const signed = verifyCheckpoint(note, KEY.verifierKey);
    expect(signed.ok && signed.value.retention).toMatchObject({ upTo: 10, before: T0 + 10 * DAY });
    expect(sink.notes).toContain(note);
    expect(await kit.raw("SELECT count(*) AS n FROM audit_events")).toEqual([{ n: kit.name === "sqlite" ? 10 : "10" }]);

    const verified = await store.verify();
    expect(verified.problems).toEqual([]);
    expect(verified).toMatchObject({ ok: true, events: 10, tree: { size: 20 }, pruned: { upTo: 10, before: T0 + 10 * DAY, signed: true } });
    // Without the key, the log's own record of the prune anchors it.
    expect(await store.verify({ checkpoints: [] })).toMatchObject({ ok: true, pruned: { upTo: 10, signed: false } });

    expect((await store.query({ limit: 100 })).map((r) => r.seq)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(await store.retention()).toMatchObject({ upTo: 10, before: T0 + 10 * DAY });
    await expect(store.prove(ids[0] ?? "")).rejects.toThrow(/pruned by retention/);
    const proof = verifyProof(await store.prove(ids[12] ?? ""), KEY.verifierKey);
    expect(proof.ok).toBe(true);

    const exported = await exportLines(store);
    const checked = verifyExport(exported, KEY.verifierKey);
    expect(checked).toMatchObject({ ok: true, value: { from: 11, to: 20, entries: 10, pruned: { upTo: 10 } } });
    // The copy's header may not claim a prune other than the one signed.
    const header = JSON.parse(exported[0] ?? "{}") as Record<string, unknown>;
    expect(verifyExport([JSON.stringify({ ...header, from: 12 }), ...exported.slice(2)], KEY.verifierKey)).toMatchObject({ ok: false, reason: expect.stringMatching(/does not end right before/) as unknown });
    expect(verifyExport([JSON.stringify({ ...header, pruned: sink.notes[0] }), ...exported.slice(1)], KEY.verifierKey)).toMatchObject({ ok: false });

    // The collector kept everything: it verifies whole; without the pruned entries, from the retention checkpoint it received.
    expect(verifyStream(streamed(lines), KEY.verifierKey)).toMatchObject({ ok: true, value: { pruned: { upTo: 10, checkedFrom: false } } });
    const rest = streamed(lines, (l) => !("seq" in l) || l.seq > 10);
    expect(verifyStream(rest, KEY.verifierKey)).toMatchObject({ ok: true, value: { checkpoint: { size: 20 }, pruned: { upTo: 10, checkedFrom: true } } });
    expect(verifyStream(streamed(lines, (l) => !("seq" in l) || l.seq > 11), KEY.verifierKey)).toMatchObject({ ok: false, reason: expect.stringMatching(/after those pruned \(1 to 10\) are missing: 11/) as unknown });

    // The log goes on: new entries, a second prune, and it still verifies.
    await writeDays(store, 10, 20);
    await store.checkpoint();
    expect((await store.verify()).ok).toBe(true);
    expect(await store.prune({ before: T0 + 25 * DAY })).toMatchObject({ pruned: 15, from: 11, upTo: 25 });
    const again = await store.verify();
    expect(again.problems).toEqual([]);
    expect(again).toMatchObject({ ok: true, events: 5, tree: { size: 30 }, pruned: { upTo: 25 } });
    expect(verifyExport(await exportLines(store), KEY.verifierKey)).toMatchObject({ ok: true, value: { from: 26, pruned: { upTo: 25 } } });
    expect(verifyStream(streamed(lines, (l) => !("seq" in l) || l.seq > 25), KEY.verifierKey)).toMatchObject({ ok: true, value: { pruned: { upTo: 25, checkedFrom: true } } });

    // Another process opening the log appends onto the pruned tree.
    await store.close();
    const reopened = await kit.open({ again: true, checkpoints: { key: KEY.signerKey, sink } });
    await writeDays(reopened, 3, 30);
    await reopened.checkpoint();
    expect(await reopened.verify()).toMatchObject({ ok: true, events: 8, tree: { size: 33 } });
  });

  it("prunes only whole cuts for every size of the log, keeping the subtrees later proofs need", async () => {
    // Cut sizes with every shape of the tree's right edge: a power of two, odd (a lone leaf kept), and between.
    for (const cut of [1, 2, 3, 6, 8, 13]) {
      const { store } = await openLog(kit);
      const ids = await writeDays(store, 17);
      expect(await store.prune({ before: T0 + cut * DAY })).toMatchObject({ pruned: cut, upTo: cut });
      const tree = await kit.raw("SELECT level, idx FROM audit_tree WHERE ((idx + 1) * (1 << level)) <= ?", [cut]);
      expect(tree.map((r) => [Number(r.level), Number(r.idx)]).sort()).toEqual(frontierSlots(cut).map((s) => [s.level, s.index]).sort());
      expect((await store.verify()).problems).toEqual([]);
      for (const id of ids.slice(cut)) expect(verifyProof(await store.prove(id), KEY.verifierKey).ok).toBe(true);
      expect(verifyExport(await exportLines(store), KEY.verifierKey).ok).toBe(true);
      await store.close();
    }
  });

  it("never splits an intent from its outcome, and keeps an intent without one, saying which", async () => {
    const { store } = await openLog(kit);
    const w = world();
    await writeDays(store, 2);
    // Entry 3: an intent whose outcome (entry 6) comes after the cutoff's entries.
    const late = eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: T0 + 2 * DAY });
    await store.intend(intentOf(late));
    await writeDays(store, 2, 3);
    await store.complete({ id: late.id, durationMs: 1, outcome: { ok: true, resultBytes: 1 } });
    await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: T0 + 9 * DAY }));
    const held = await store.prune({ before: T0 + 4 * DAY });
    expect(held).toMatchObject({ pruned: 2, upTo: 2, heldBack: { reason: "intent", seq: 3, eventId: late.id, message: expect.stringMatching(/outcome at entry 6/) as unknown } });

    // An intent with no outcome at all holds the cut until it has one.
    const open = eventFor(w.alice, { action: "tool.call", tool: "search" }, { at: T0 + 10 * DAY });
    await store.intend(intentOf(open));
    await writeDays(store, 3, 11);
    const waiting = await store.prune({ before: T0 + 13 * DAY });
    expect(waiting).toMatchObject({ upTo: 7, heldBack: { reason: "intent", seq: 8, eventId: open.id, message: expect.stringMatching(/has no outcome/) as unknown } });
    const report = await store.verify();
    expect(report).toMatchObject({ ok: true, openIntentCount: 1, openIntents: [{ seq: 8, id: open.id }] });
    // Nothing more can go while it waits: a clear no-op, with no new checkpoint.
    expect(await store.prune({ before: T0 + 13 * DAY })).toMatchObject({ pruned: 0, from: null, upTo: 7, checkpoint: null, heldBack: { reason: "intent", seq: 8 } });
    // Its outcome, entry 12, keeps it until the outcome can go too.
    await store.complete({ id: open.id, durationMs: 1, outcome: { ok: true, resultBytes: 1 } });
    expect(await store.prune({ before: T0 + 13 * DAY })).toMatchObject({ pruned: 0, upTo: 7, heldBack: { reason: "intent", seq: 8, message: expect.stringMatching(/outcome at entry 12/) as unknown } });
    await writeDays(store, 1, 14);
    expect(await store.prune({ before: T0 + 14 * DAY })).toMatchObject({ pruned: 5, from: 8, upTo: 12, heldBack: null });
    expect((await store.verify()).ok).toBe(true);
  });

  it("a writer that remembers links a prune deleted writes them again, so its next entries keep their lineage", async () => {
    const { store, sink } = await openLog(kit);
    const w = world();
    // Bob's links appear only in entries the prune deletes; the writer remembers them.
    await store.write(eventFor(w.report, { action: "tool.call", tool: "run_report", tenant: "globex" }, { at: T0 }));
    await writeDays(store, 3, 1);
    const pruner = await kit.open({ again: true, checkpoints: { key: KEY.signerKey, sink } });
    expect(await pruner.prune({ before: T0 + DAY })).toMatchObject({ pruned: 1, upTo: 1 });
    expect(await kit.raw("SELECT id FROM audit_links WHERE id = ?", [w.report.id])).toEqual([]);
    await store.write(eventFor(w.report, { action: "tool.call", tool: "run_report", tenant: "globex" }, { at: T0 + 5 * DAY }));
    await store.checkpoint();
    expect((await store.verify()).problems).toEqual([]);
    expect((await store.query({ principal: "bob" })).map((r) => r.event.subject.capabilityId)).toEqual([w.report.id]);
  });

  it("keeps the newest entry, and says so", async () => {
    const { store } = await openLog(kit);
    await writeDays(store, 4);
    expect(await store.prune({ before: T0 + 30 * DAY })).toMatchObject({ pruned: 3, upTo: 3, heldBack: { reason: "newest", seq: 4 } });
    expect(await store.verify()).toMatchObject({ ok: true, events: 1, pruned: { upTo: 3 } });
    expect(await store.prune({ before: T0 + 30 * DAY })).toMatchObject({ pruned: 0, upTo: 3, checkpoint: null, heldBack: { reason: "newest" } });
  });

  it("is a no-op with a clear report when nothing is old enough or the log is empty", async () => {
    const { store, sink } = await openLog(kit);
    expect(await store.prune({ before: T0 })).toMatchObject({ pruned: 0, from: null, upTo: 0, checkpoint: null, heldBack: null });
    await writeDays(store, 6);
    const before = sink.notes.length;
    expect(await store.prune({ before: new Date(T0) })).toMatchObject({ pruned: 0, upTo: 0, checkpoint: null, heldBack: null });
    // Only the checkpoint of the head it signs first: no retention checkpoint.
    expect(sink.notes.slice(before).every((n) => !n.includes("agentcap-retention"))).toBe(true);
    expect((await store.verify()).pruned).toBeNull();
  });

  it.each([
    ["a cutoff in the future", { before: Date.now() + DAY }, InvalidInput, /in the future/],
    ["a negative time", { before: -1 }, InvalidInput, /prune options/],
    ["a time that is not a whole number", { before: 1.5 }, InvalidInput, /prune options/],
    ["an invalid Date", { before: new Date("nope") }, InvalidInput, /prune options/],
    ["text", { before: "90d" }, InvalidInput, /prune options/],
    ["no cutoff", {}, InvalidInput, /prune options/],
    ["an unknown option", { before: T0, dryRun: true }, InvalidInput, /prune options/],
  ])("refuses %s with a typed error, pruning nothing", async (_, options, type, message) => {
    const { store, sink } = await openLog(kit);
    await writeDays(store, 3);
    const notes = sink.notes.length;
    const attempt = store.prune(options as never);
    await expect(attempt).rejects.toThrow(type);
    await expect(store.prune(options as never)).rejects.toThrow(message);
    expect(sink.notes.length).toBe(notes);
  });

  it("refuses to prune without a checkpoint key, or a store opened read-only", async () => {
    const plain = await kit.open();
    await writeDays(plain, 3);
    await expect(plain.prune({ before: T0 + 2 * DAY })).rejects.toThrow(InvalidInput);
    await expect(plain.prune({ before: T0 + 2 * DAY })).rejects.toThrow(/no checkpoint key/);
    const reader = await kit.open({ again: true, readOnly: true, checkpoints: { key: KEY.signerKey, sink: memoryCheckpointSink() } });
    await expect(reader.prune({ before: T0 + 2 * DAY })).rejects.toThrow(AuditFailure);
  });

  it("refuses to prune a log that does not verify, deleting nothing", async () => {
    const { store } = await openLog(kit);
    await writeDays(store, 8);
    await store.checkpoint();
    await kit.unlock();
    await kit.raw("UPDATE audit_events SET body = replace(body, 'search', 'sEarch') WHERE seq = 3");
    await expect(store.prune({ before: T0 + 5 * DAY })).rejects.toThrow(/does not verify.*nothing was pruned/);
    expect(await kit.raw("SELECT seq FROM audit_events WHERE seq = 1")).toHaveLength(1);
  });

  /** A log of 16 entries pruned up to 8, with checkpoints: the store, its sink, and its ids. */
  async function pruned() {
    const log = await openLog(kit);
    const ids = await writeDays(log.store, 16);
    await log.store.checkpoint();
    expect(await log.store.prune({ before: T0 + 8 * DAY })).toMatchObject({ upTo: 8 });
    await kit.unlock();
    return { ...log, ids };
  }

  interface TamperCase {
    readonly name: string;
    readonly tamper: (log: Awaited<ReturnType<typeof pruned>>) => Promise<void>;
    /** Kinds verify must report with the signed checkpoints (at least these). */
    readonly kinds: readonly TamperKind[];
  }

  /** A prune up to `upTo` recorded with another key's signature (its subtrees hash to its root, so only the signature is wrong). */
  const forgedRetention = (upTo: number): string => {
    const frontier = frontierSlots(upTo).map((_, i) => Buffer.alloc(32, i + 1));
    let root = frontier.at(-1) as Buffer;
    for (let i = frontier.length - 2; i >= 0; i--) root = nodeHash(frontier[i] as Buffer, root);
    return signCheckpoint(parseSignerKey(OTHER.signerKey), "audit.test/retention", upTo, root, retentionLines({ upTo, before: T0, at: T0, chainHash: "c".repeat(64), frontier }));
  };

  const dropRetentionTrigger = () => kit.raw(kit.name === "sqlite" ? "DROP TRIGGER IF EXISTS audit_retention_no_delete" : "DROP TRIGGER IF EXISTS audit_retention_append_only ON audit_retention");

  const table: readonly TamperCase[] = [
    { name: "deleting the first retained entry", tamper: async () => kit.raw("DELETE FROM audit_events WHERE seq = 9").then(() => undefined), kinds: ["missing", "rewritten"] },
    { name: "deleting a retained entry in the middle", tamper: async () => kit.raw("DELETE FROM audit_events WHERE seq = 12").then(() => undefined), kinds: ["missing", "rewritten"] },
    { name: "deleting the retained entries after the prune as if pruned further", tamper: async () => kit.raw("DELETE FROM audit_events WHERE seq <= 10").then(() => undefined), kinds: ["missing", "rewritten"] },
    { name: "editing a retained entry", tamper: async () => kit.raw("UPDATE audit_events SET body = replace(body, 'search', 'sEarch') WHERE seq = 11").then(() => undefined), kinds: ["edited", "rewritten"] },
    {
      name: "rewriting the first retained entry to follow another chain",
      tamper: async () => kit.raw("UPDATE audit_events SET prev_hash = ? WHERE seq = 9", ["f".repeat(64)]).then(() => undefined),
      kinds: ["edited"],
    },
    {
      name: "changing a subtree the prune kept",
      tamper: async () => kit.raw("UPDATE audit_tree SET hash = ? WHERE level = 3 AND idx = 0", ["a".repeat(64)]).then(() => undefined),
      kinds: ["rewritten"],
    },
    {
      name: "recording a prune further on, signed with another key",
      tamper: async () => {
        await kit.raw("INSERT INTO audit_retention (up_to, note, at) VALUES (?, ?, ?)", [10, forgedRetention(10), T0]);
        await kit.raw("DELETE FROM audit_events WHERE seq IN (9, 10)");
      },
      kinds: ["checkpoint", "missing", "rewritten"],
    },
    {
      name: "removing the log's record of the prune and deleting more",
      tamper: async () => {
        await dropRetentionTrigger();
        await kit.raw("DELETE FROM audit_retention");
        await kit.raw("DELETE FROM audit_events WHERE seq = 9");
      },
      kinds: ["missing"],
    },
  ];

  it.each(table)("detects $name after a prune", async ({ tamper, kinds }) => {
    const log = await pruned();
    expect((await log.store.verify()).ok).toBe(true);
    await tamper(log);
    const report = await log.store.verify();
    expect(report.ok).toBe(false);
    for (const kind of kinds) expect(report.problems.map((p) => p.kind)).toContain(kind);
  });

  it("still verifies from the signed checkpoint file when the log's own record of the prune is gone", async () => {
    const log = await pruned();
    await dropRetentionTrigger();
    await kit.raw("DELETE FROM audit_retention");
    expect(await log.store.verify()).toMatchObject({ ok: true, pruned: { upTo: 8, signed: true } });
    // Without the key there is nothing to anchor to: the deletion is reported.
    expect((await log.store.verify({ checkpoints: [] })).problems.map((p) => p.kind)).toContain("missing");
  });

  it("reports entries deleted without the prune path as missing", async () => {
    const { store } = await openLog(kit);
    await writeDays(store, 16);
    await store.checkpoint();
    await kit.unlock();
    await kit.raw("DELETE FROM audit_events WHERE seq <= 8");
    const report = await store.verify();
    expect(report.ok).toBe(false);
    expect(report.pruned).toBeNull();
    expect(report.problems[0]).toMatchObject({ kind: "missing", seq: 1 });
    // An export still starts at entry 1, claims no prune, and its copy shows the gap.
    const exported = await exportLines(store);
    expect(JSON.parse(exported[0] ?? "{}")).toMatchObject({ from: 1 });
    expect(JSON.parse(exported[0] ?? "{}")).not.toHaveProperty("pruned");
    expect(verifyExport(exported, KEY.verifierKey)).toMatchObject({ ok: false, reason: expect.stringMatching(/seq 9 where 1 was due/) as unknown });
  });

  it("refuses a prune record whose text was changed, or signed by another key", async () => {
    await pruned();
    const note = String((await kit.raw("SELECT note FROM audit_retention"))[0]?.note);
    expect(verifyCheckpoint(note, KEY.verifierKey).ok).toBe(true);
    expect(verifyCheckpoint(note.replace("pruned 1-8", "pruned 1-9"), KEY.verifierKey).ok).toBe(false);
    expect(verifyCheckpoint(forgedRetention(8), KEY.verifierKey).ok).toBe(false);
    expect(verifyCheckpoint(forgedRetention(8), OTHER.verifierKey)).toMatchObject({ ok: true, value: { retention: { upTo: 8 } } });
  });

  it("prune then tamper (property): an intact pruned log verifies; any edit or deletion of a retained entry is reported", async () => {
    const runs = kit.name === "sqlite" ? 12 : 5;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 20 }),
        fc.integer({ min: 1, max: 19 }),
        fc.nat(),
        fc.constantFrom("none", "delete", "edit", "reorder"),
        async (n, cutDays, pick, op) => {
          const { store } = await openLog(kit);
          await writeDays(store, n);
          const report = await store.prune({ before: T0 + cutDays * DAY });
          const upTo = Math.min(cutDays, n - 1);
          expect(report.upTo).toBe(upTo);
          const retained = n - upTo;
          const seq = upTo + 1 + (pick % retained);
          if (op === "none") {
            expect((await store.verify()).ok).toBe(true);
            return;
          }
          await kit.unlock();
          if (op === "delete") await kit.raw("DELETE FROM audit_events WHERE seq = ?", [seq]);
          if (op === "edit") await kit.raw("UPDATE audit_events SET body = replace(body, 'alice', 'mallory') WHERE seq = ?", [seq]);
          if (op === "reorder") {
            if (retained < 2) return;
            const other = seq === n ? seq - 1 : seq + 1;
            await kit.raw("UPDATE audit_events SET seq = -1 WHERE seq = ?", [seq]);
            await kit.raw("UPDATE audit_events SET seq = ? WHERE seq = ?", [seq, other]);
            await kit.raw("UPDATE audit_events SET seq = ? WHERE seq = -1", [other]);
          }
          expect((await store.verify()).ok).toBe(false);
          await store.close();
        },
      ),
      { numRuns: runs },
    );
  });
});
