import { GENESIS_HASH, type ChainHead } from "./chain.js";

/**
 * What `verify` can find wrong with a log:
 * - `edited`: an event no longer matches its own hash (its row or a lineage link changed);
 * - `missing`: sequence numbers are absent (events deleted);
 * - `reordered`: the event stored before this one is not the one it was written after;
 * - `inserted`: an event sits in the chain where none was written;
 * - `chain-break`: an event was written after an event that is no longer in the log
 *   (the event before it was rewritten and rehashed, or one between them was deleted);
 * - `index`: a query column or the lineage index disagrees with the event, so queries would mislead;
 * - `orphan`: an outcome completes an intent that is not in the log before it;
 * - `truncated` / `rewritten`: compared with a signed checkpoint, the log lost its end, or no longer
 *   hashes to the root the checkpoint signed (an entry was edited, deleted, inserted or replaced, even
 *   with every hash recomputed, or the whole database was replaced);
 * - `checkpoint`: a checkpoint given does not verify with the key, or two signed checkpoints disagree
 *   (an RFC 9162 consistency proof between successive ones fails).
 */
export type TamperKind = "edited" | "missing" | "reordered" | "inserted" | "chain-break" | "index" | "orphan" | "truncated" | "rewritten" | "checkpoint";

/** One thing wrong with the log, located by sequence number and, when known, event id. */
export interface TamperProblem {
  readonly kind: TamperKind;
  readonly seq: number;
  readonly eventId: string | null;
  readonly message: string;
}

/** A stored event as the walker sees it: where it is, what it says it follows, and whether its hash holds. */
export interface WalkedRow {
  readonly seq: number;
  readonly id: string;
  readonly prevHash: string;
  readonly hash: string;
  /** The hash recomputed from the row's content, or null when its content cannot be rebuilt (a lineage link is missing). */
  readonly recomputed: string | null;
  /** Why the content cannot be rebuilt, when `recomputed` is null. */
  readonly unreadable?: string;
}

/** Finds the stored event with this hash, wherever it is in the log. */
export type HashLookup = (hash: string) => Promise<{ readonly seq: number; readonly id: string } | null>;

interface Seen {
  readonly seq: number;
  readonly id: string;
  reordered: boolean;
  inserted: boolean;
}

const RECENT = 256;

const short = (hash: string) => `${hash.slice(0, 12)}…`;
const name = (e: { readonly seq: number; readonly id: string }) => `event ${e.id} (seq ${e.seq})`;

/**
 * Walks a log in stored order and explains every place where it departs from
 * the chain it was written as. Each event's hash covers its predecessor's
 * hash and its own content, not its position, so an intact event that moved
 * is told apart from one whose content changed.
 */
export class ChainWalker {
  readonly #lookup: HashLookup;
  readonly #report: (problem: TamperProblem) => void;
  readonly #recent: Seen[] = [];
  #last: { seq: number; id: string; hash: string } | null = null;

  /** `start`: where a log pruned by retention begins, the last pruned entry (its chain hash as the retention record signed it), which the first entry walked must follow. */
  constructor(lookup: HashLookup, report: (problem: TamperProblem) => void, start: { readonly seq: number; readonly hash: string } | null = null) {
    this.#lookup = lookup;
    this.#report = report;
    this.#last = start === null ? null : { seq: start.seq, id: "pruned by retention", hash: start.hash };
  }

  /** The last entry walked. */
  get head(): ChainHead | null {
    return this.#last === null ? null : { seq: this.#last.seq, hash: this.#last.hash };
  }

  /** Checks the next stored event; rows must come in increasing `seq`. */
  async push(row: WalkedRow): Promise<void> {
    const last = this.#last;
    const seen: Seen = { seq: row.seq, id: row.id, reordered: false, inserted: false };
    const expected = last === null ? 1 : last.seq + 1;
    const intact = row.recomputed === row.hash;

    if (!intact) {
      const why = row.recomputed === null ? (row.unreadable ?? "its content cannot be rebuilt") : "its content or one of its lineage links was changed";
      this.#problem("edited", row, `${name(row)} does not match its hash: ${why}`);
    }
    if (row.seq > expected) {
      const span = row.seq - 1 === expected ? `event seq ${expected} is` : `events seq ${expected}–${row.seq - 1} are`;
      this.#report({ kind: "missing", seq: expected, eventId: null, message: `${span} missing: deleted from the log` });
    } else if (intact && row.prevHash !== (last?.hash ?? GENESIS_HASH)) {
      await this.#explainLink(row, seen, last);
    }

    this.#recent.push(seen);
    if (this.#recent.length > RECENT) this.#recent.shift();
    this.#last = { seq: row.seq, id: row.id, hash: row.hash };
  }

  async #explainLink(row: WalkedRow, seen: Seen, last: { seq: number; id: string } | null): Promise<void> {
    const writtenAfter = row.prevHash === GENESIS_HASH ? { seq: 0, id: "(start of the log)" } : await this.#lookup(row.prevHash);
    const before = last === null ? "the start of the log" : name(last);
    if (writtenAfter === null) {
      const cause = last === null ? "the events before it were deleted" : `the event stored before it, ${before}, was rewritten, or an event between them was deleted`;
      this.#problem("chain-break", row, `${name(row)} was written after an event with hash ${short(row.prevHash)} that is no longer in the log: ${cause}`);
      return;
    }
    const after = writtenAfter.seq === 0 ? "the start of the log" : name(writtenAfter);
    if (writtenAfter.seq >= row.seq) {
      seen.reordered = true;
      this.#problem("reordered", row, `${name(row)} was written after ${after}, but is stored before it`);
      return;
    }
    const between = this.#recent.filter((e) => e.seq > writtenAfter.seq);
    if (between.length === 0) {
      this.#problem("chain-break", row, `${name(row)} was written after ${after}, which is not the event stored before it`);
      return;
    }
    if (between.some((e) => e.reordered)) {
      seen.reordered = true;
      this.#problem("reordered", row, `${name(row)} was written right after ${after}, but is stored after ${before}`);
      return;
    }
    for (const e of between) {
      if (e.inserted) continue;
      e.inserted = true;
      this.#problem("inserted", e, `${name(e)} is not part of the chain: ${name(row)} was written right after ${after}`);
    }
  }

  #problem(kind: TamperKind, at: { readonly seq: number; readonly id: string }, message: string): void {
    this.#report({ kind, seq: at.seq, eventId: at.id, message });
  }
}
