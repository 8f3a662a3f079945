/**
 * Checking a streamed copy of the log (what the OTLP sink shipped) with the
 * public key alone: the leaves of entries 1 to N must hash to the root of
 * the signed checkpoint of size N, so an edited, missing, reordered or
 * invented entry below the latest checkpoint shows.
 */
import { Frontier, frontierFrom } from "./merkle.js";
import { leafHash, verifyCheckpoint, type Retention, type Verdict, type VerifierKey } from "./proof-verifier.js";

/** What a verified stream holds. */
export interface VerifiedStream {
  /** The latest signed checkpoint's origin and size: entries 1 to `size` (or, when the copy was checked from a prune's record, those after it) are all there and match it. */
  readonly checkpoint: { readonly origin: string; readonly size: number };
  /** Entries received beyond it, which no checkpoint received yet covers. */
  readonly uncovered: number;
  /**
   * The latest prune by retention the stream carried the signed record of:
   * the source deleted entries 1 to `upTo`. `checkedFrom` is true when this
   * copy lacks some of them and was checked from the record instead.
   */
  readonly pruned?: { readonly upTo: number; readonly before: number; readonly at: number; readonly checkedFrom: boolean };
}

const refuse = (reason: string): Verdict<never> => ({ ok: false, reason });

/** Up to ten missing sequence numbers, as ranges. */
function ranges(missing: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < missing.length && out.length < 10; ) {
    let j = i;
    while (j + 1 < missing.length && missing[j + 1] === (missing[j] as number) + 1) j++;
    out.push(i === j ? String(missing[i]) : `${String(missing[i])}-${String(missing[j])}`);
    i = j + 1;
  }
  return out.join(", ");
}

/**
 * Checks streamed lines (each an OTLP record's body: `{ seq, leaf }` or
 * `{ checkpoint }`, in any order, repeats allowed) against the latest
 * checkpoint among them that `key` signed. A copy that lacks entries the
 * source pruned by retention (and its collector dropped too) is checked from
 * the signed retention checkpoint among them, from the entry after it. Refused when no checkpoint
 * verifies, when two lines give one sequence number different leaves, when
 * an entry the checkpoint covers is missing (their numbers are named), or
 * when the leaves do not hash to its root.
 */
export function verifyStream(lines: Iterable<string>, key: VerifierKey | string): Verdict<VerifiedStream> {
  const leaves = new Map<number, string>();
  let latest: { origin: string; size: number; rootHash: Buffer } | null = null;
  let retention: Retention | null = null;
  let n = 0;
  for (const text of lines) {
    n += 1;
    if (text.trim() === "") continue;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      return refuse(`line ${String(n)} is not JSON`);
    }
    if (typeof line !== "object" || line === null) return refuse(`line ${String(n)} is neither an entry nor a checkpoint`);
    const l = line as { seq?: unknown; leaf?: unknown; checkpoint?: unknown };
    if (typeof l.checkpoint === "string") {
      const cp = verifyCheckpoint(l.checkpoint, key);
      if (!cp.ok) return refuse(`line ${String(n)}: ${cp.reason}`);
      if (latest === null || cp.value.size > latest.size) latest = cp.value;
      const r = cp.value.retention;
      if (r !== undefined && (retention === null || r.upTo > retention.upTo)) retention = r;
      continue;
    }
    if (typeof l.seq !== "number" || !Number.isSafeInteger(l.seq) || l.seq < 1 || typeof l.leaf !== "string") return refuse(`line ${String(n)} is neither an entry nor a checkpoint`);
    const known = leaves.get(l.seq);
    if (known !== undefined && known !== l.leaf) return refuse(`entry ${String(l.seq)} was received twice with different contents`);
    leaves.set(l.seq, l.leaf);
  }
  if (latest === null) return refuse("no checkpoint signed by this key was received");
  // A copy holding every entry is checked from the first; one that lacks pruned entries, from the signed record of the prune.
  let start = 0;
  for (let seq = 1; seq <= latest.size; seq++) {
    if (!leaves.has(seq)) {
      if (retention !== null && seq <= retention.upTo) start = retention.upTo;
      break;
    }
  }
  const missing: number[] = [];
  for (let seq = start + 1; seq <= latest.size; seq++) if (!leaves.has(seq)) missing.push(seq);
  if (missing.length > 0) return refuse(`${String(missing.length)} of the ${String(latest.size - start)} entries the latest checkpoint covers${start > 0 ? ` after those pruned (1 to ${String(start)})` : ""} are missing: ${ranges(missing)}`);
  const tree = start === 0 || retention === null ? new Frontier() : frontierFrom(start, retention.frontier);
  for (let seq = start + 1; seq <= latest.size; seq++) tree.push(leafHash(leaves.get(seq) as string), () => undefined);
  if (!tree.root().equals(latest.rootHash)) return refuse(`entries ${String(start + 1)} to ${String(latest.size)} do not hash to the root the checkpoint signed: an entry was edited, reordered or invented`);
  let uncovered = 0;
  for (const seq of leaves.keys()) if (seq > latest.size) uncovered++;
  const pruned = retention === null ? {} : { pruned: { upTo: retention.upTo, before: retention.before, at: retention.at, checkedFrom: start > 0 } };
  return { ok: true, value: { checkpoint: { origin: latest.origin, size: latest.size }, uncovered, ...pruned } };
}
