import { sql, type Kysely } from "kysely";
import { z } from "zod";
import { AuditFailure, InvalidInput, systemClock } from "../kernel/index.js";
import { describeIssues } from "../kernel/internal.js";
import { signCheckpoint, verifiedCheckpoints, type CheckpointSigner, type CheckpointSink } from "./checkpoint.js";
import { PHASE } from "./encoding.js";
import { frontierSlots, type Frontier } from "./merkle.js";
import { retentionLines } from "./proof-verifier.js";
import type { AuditDb } from "./schema.js";
import type { AuditBackend } from "./store.js";
import { retentionRows, storedSubtrees, verifyLog } from "./verify.js";

/*
 * Retention by age. A prune deletes the oldest entries of the log, 1 to N,
 * and the log stays verifiable with the public key alone:
 *
 * - N is a cut the signed checkpoints already vouch for: at most the size of
 *   the latest one (the store signs its head first), and the whole log must
 *   verify against them before anything is deleted, so a prune never
 *   launders tampering by destroying the evidence or signing over it.
 * - The prune is recorded as a signed fact: a checkpoint of the tree of N
 *   entries whose extension lines say "pruned 1-N before <cutoff> at
 *   <time>", with entry N's chain hash and the hashes of the complete
 *   subtrees that make up the tree of N leaves. It is written to the
 *   checkpoint sink (and streamed) before anything is deleted, and kept in
 *   the log's audit_retention table. Verification grows the tree from it, so
 *   the retained entries still hash to every later checkpoint; entries gone
 *   without such a record are reported missing, as before.
 * - Intents and outcomes are never split: the cut stops before the oldest
 *   intent whose outcome is not pruned with it, so an intent still in flight
 *   or one whose process stopped before recording its outcome (which `audit
 *   verify` lists) is kept, and the report names it.
 * - The newest entry is always kept: the log's head, which the chain and
 *   the tree continue from.
 */

/** What to prune: the entries that began before `before` (ms since the epoch, or a Date). */
export interface PruneOptions {
  readonly before: number | Date;
}

/** Why a prune stopped short of its cutoff: the first entry it had to keep. */
export interface HeldBack {
  /**
   * `intent`: an intent whose outcome is not in the pruned range (still in
   * flight, or its process stopped before recording it); `checkpoint`:
   * entries no signed checkpoint covers yet; `newest`: the log's newest
   * entry, always kept.
   */
  readonly reason: "intent" | "checkpoint" | "newest";
  /** The first entry kept because of it. */
  readonly seq: number;
  /** The intent's event id, for `intent`. */
  readonly eventId: string | null;
  readonly message: string;
}

/** What a prune did. */
export interface PruneReport {
  /** How many entries this prune deleted (0 when nothing was due). */
  readonly pruned: number;
  /** The first entry it deleted, or null when it deleted none. */
  readonly from: number | null;
  /** Entries 1 to `upTo` are pruned now, by this prune or earlier ones (0 when the log was never pruned). */
  readonly upTo: number;
  /** The cutoff, in ms since the epoch. */
  readonly before: number;
  /** The signed retention checkpoint recording this prune, or null when it deleted nothing. */
  readonly checkpoint: string | null;
  /** Why it stopped before the cutoff, or null when every entry older than the cutoff is pruned. */
  readonly heldBack: HeldBack | null;
}

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * The cutoff an age or a date names, in ms since the epoch: `90d`, `12h`,
 * `30m`, `2w`, `45s` (that long before `now`), or an ISO date or time
 * (`2025-01-15`, `2025-01-15T09:00Z`). InvalidInput for a zero or negative
 * age, for anything else, and for a cutoff after `now`.
 */
export function retentionCutoff(olderThan: string, now: number = systemClock.now()): number {
  const text = olderThan.trim();
  if (/^-/.test(text)) throw new InvalidInput(`retention age ${JSON.stringify(olderThan)} is negative: give how old entries must be to go, such as 90d`);
  const age = /^(\d+)([smhdw])$/.exec(text);
  let cutoff: number;
  if (age !== null) {
    const amount = Number(age[1]);
    if (amount === 0) throw new InvalidInput(`retention age ${JSON.stringify(olderThan)} is zero: it would prune the whole log up to now; give how old entries must be to go, such as 90d`);
    cutoff = now - amount * (UNITS[age[2] ?? ""] ?? Number.NaN);
  } else {
    // Only ISO-like text: Date.parse accepts much else, with engine-specific meanings.
    cutoff = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text) : Number.NaN;
  }
  if (!Number.isSafeInteger(cutoff) || cutoff < 0) {
    throw new InvalidInput(`${JSON.stringify(olderThan)} is not a retention age or date: use an age (90d, 12h, 30m, 2w) or an ISO date or time (2025-01-15, 2025-01-15T09:00Z)`);
  }
  if (cutoff > now) throw new InvalidInput(`retention cutoff ${new Date(cutoff).toISOString()} is in the future: only entries older than now can be pruned`);
  return cutoff;
}

const optionsSchema = z.strictObject({
  before: z.union([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), z.date()]),
});

/** What a prune needs of its store. */
export interface PruneContext {
  readonly db: Kysely<AuditDb>;
  readonly prune: AuditBackend["prune"];
  readonly signer: CheckpointSigner;
  readonly origin: string;
  /** Where the store's checkpoints go (streamed too, when the store streams). */
  readonly sink: CheckpointSink;
  /** Signs a checkpoint of the head now, so that every entry written so far may be pruned. */
  readonly checkpointHead: () => Promise<void>;
}

/** Validates prune options; InvalidInput says what is wrong. */
export function pruneCutoff(options: unknown, now: number = systemClock.now()): number {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidInput(describeIssues("prune options", parsed.error));
  const before = parsed.data.before instanceof Date ? parsed.data.before.getTime() : parsed.data.before;
  if (Number.isNaN(before)) throw new InvalidInput("prune options: before must be a valid date");
  if (before > now) throw new InvalidInput(`prune options: before (${new Date(before).toISOString()}) is in the future: only entries older than now can be pruned`);
  return before;
}

/** Prunes the entries older than the cutoff that can go; see the module comment. */
export async function pruneLog(ctx: PruneContext, before: number): Promise<PruneReport> {
  const { db } = ctx;
  await ctx.checkpointHead();
  const records = await retentionRows(db);
  const prunedBefore = records.at(-1)?.up_to ?? 0;
  const bounds = await db
    .selectFrom("audit_events")
    .select((eb) => [eb.fn.min<number | null>("seq").as("first"), eb.fn.max<number | null>("seq").as("head")])
    .executeTakeFirst();
  const first = bounds?.first ?? null;
  const head = bounds?.head ?? null;
  const nothing = (heldBack: HeldBack | null): PruneReport => ({ pruned: 0, from: null, upTo: first === null ? prunedBefore : first - 1, before, checkpoint: null, heldBack });
  if (first === null || head === null) return nothing(null);

  const notes = await ctx.sink.read();
  const latest = verifiedCheckpoints(notes, ctx.signer.verifierKey).good.at(-1)?.size ?? 0;
  const newer = await db.selectFrom("audit_events").select((eb) => eb.fn.min<number | null>("seq").as("seq")).where("at", ">=", before).executeTakeFirst();
  const byAge = newer?.seq == null ? head : newer.seq - 1;
  let upTo = Math.min(byAge, latest, head - 1);
  let heldBack: HeldBack | null = null;
  if (upTo < byAge) {
    heldBack =
      upTo === head - 1
        ? { reason: "newest", seq: head, eventId: null, message: `entry ${String(head)} is the log's newest: it is always kept, as the head the log continues from` }
        : { reason: "checkpoint", seq: upTo + 1, eventId: null, message: `entries from ${String(upTo + 1)} on are not covered by a signed checkpoint yet` };
  }
  // Never split an intent from its outcome: each pass cuts before the oldest intent whose outcome is not pruned with it, until none is.
  for (;;) {
    const held = await splitIntent(db, first, upTo);
    if (held === null) break;
    const outcome = await db.selectFrom("audit_events").select("seq").where("id", "=", held.id).where("phase", "=", PHASE.outcome).executeTakeFirst();
    upTo = held.seq - 1;
    heldBack = {
      reason: "intent",
      seq: held.seq,
      eventId: held.id,
      message:
        outcome === undefined
          ? `the intent at entry ${String(held.seq)} (event ${held.id}) has no outcome in the log: it is in flight, or its process stopped before recording how it ended; it and everything after it are kept`
          : `the intent at entry ${String(held.seq)} (event ${held.id}) has its outcome at entry ${String(outcome.seq)}, which is kept, so the intent is kept with it`,
    };
  }
  if (upTo < first) return nothing(heldBack);

  // The cut's tree and chain hash, from a walk that must find the whole log intact: a prune destroys what verify would need.
  let reached: { tree: Frontier; chainHash: string } | null = null;
  const report = await verifyLog(db, { checkpoints: notes, verifierKey: ctx.signer.verifierKey }, {
    reached: {
      size: upTo,
      then: (tree, chainHash) => {
        reached = { tree, chainHash };
      },
    },
  });
  if (!report.ok) {
    const shown = report.problems.slice(0, 3).map((p) => `${p.kind} at seq ${String(p.seq)}: ${p.message}`).join("; ");
    throw new AuditFailure(`the audit log does not verify against its signed checkpoints (${shown}); nothing was pruned, since pruning would delete the evidence: run audit verify`);
  }
  const cut = reached as { tree: Frontier; chainHash: string } | null;
  if (cut === null) throw new AuditFailure(`the audit log changed while it was being pruned: entry ${String(upTo)} was not reached; nothing was pruned`);
  const slots = frontierSlots(upTo);
  const lookup = storedSubtrees(db);
  for (const [i, slot] of slots.entries()) {
    const stored = await lookup(slot.level, slot.index);
    if (!stored.equals(cut.tree.nodes[i]?.hash ?? Buffer.alloc(0))) {
      throw new AuditFailure(`the audit log's stored subtree at level ${String(slot.level)}, index ${String(slot.index)} does not match its entries; nothing was pruned: run audit verify`);
    }
  }

  const at = systemClock.now();
  const frontier = cut.tree.nodes.map((n) => n.hash);
  const note = signCheckpoint(ctx.signer, ctx.origin, upTo, cut.tree.root(), retentionLines({ upTo, before, at, chainHash: cut.chainHash, frontier }));
  // Signed and stored outside the database before anything is deleted: a prune that then fails leaves a log that still verifies whole.
  await ctx.sink.append(note);
  const single = slots.find((s) => s.level === 0);
  const deleted = await ctx.prune({
    upTo,
    keep: slots.filter((s) => s.level > 0),
    leaf: single === undefined ? null : { index: single.index, hash: (frontier.at(-1) as Buffer).toString("hex") },
    record: { up_to: upTo, note, at },
  });
  return { pruned: deleted, from: first, upTo, before, checkpoint: note, heldBack };
}

/** The oldest intent among entries first..upTo whose outcome is not among them too. */
async function splitIntent(db: Kysely<AuditDb>, first: number, upTo: number): Promise<{ seq: number; id: string } | null> {
  if (upTo < first) return null;
  const row = await db
    .selectFrom("audit_events as i")
    .select(["i.seq", "i.id"])
    .where("i.phase", "=", sql.lit(PHASE.intent))
    .where("i.seq", ">=", first)
    .where("i.seq", "<=", upTo)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("audit_events as o")
            .select("o.seq")
            .whereRef("o.id", "=", "i.id")
            .where("o.phase", "=", sql.lit(PHASE.outcome))
            .where("o.seq", "<=", upTo),
        ),
      ),
    )
    .orderBy("i.seq")
    .limit(1)
    .executeTakeFirst();
  return row ?? null;
}
