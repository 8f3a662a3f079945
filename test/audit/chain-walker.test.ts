import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chainHash, GENESIS_HASH } from "../../src/audit/chain.ts";
import { ChainWalker, type TamperKind, type TamperProblem, type WalkedRow } from "../../src/audit/chain-walker.ts";
import { leafHash } from "../../src/audit/proof-verifier.ts";

/** The chain hash of an entry with this body (no lineage links). */
const hashOf = (prev: string, body: string) => chainHash(prev, leafHash(body).toString("hex"));

/*
 * The verifier's reasoning, on logs held in memory: every way of tampering
 * with a chain is detected, and located where it happened. The same cases run
 * against the real stores in tamper.test.ts. What the chain cannot see alone
 * (the last entries deleted or rewritten) is for the signed checkpoints,
 * tested there.
 */

interface Stored {
  seq: number;
  id: string;
  body: string;
  prevHash: string;
  hash: string;
}

function chainOf(n: number): Stored[] {
  const rows: Stored[] = [];
  let prev = GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const body = JSON.stringify({ id: `e${String(i)}`, n: i });
    const hash = hashOf(prev, body);
    rows.push({ seq: i, id: `e${String(i)}`, body, prevHash: prev, hash });
    prev = hash;
  }
  return rows;
}

async function walk(rows: readonly Stored[]): Promise<TamperProblem[]> {
  const bySeq = [...rows].sort((a, b) => a.seq - b.seq);
  const byHash = new Map(bySeq.map((r) => [r.hash, { seq: r.seq, id: r.id }]));
  const problems: TamperProblem[] = [];
  const walker = new ChainWalker((h) => Promise.resolve(byHash.get(h) ?? null), (p) => problems.push(p));
  for (const r of bySeq) {
    const row: WalkedRow = { seq: r.seq, id: r.id, prevHash: r.prevHash, hash: r.hash, recomputed: hashOf(r.prevHash, r.body) };
    await walker.push(row);
  }
  return problems;
}

const renumber = (rows: Stored[]) => rows.map((r, i) => ({ ...r, seq: i + 1 }));

type Op =
  | { kind: "edit"; k: number }
  | { kind: "editRehash"; k: number }
  | { kind: "delete"; k: number }
  | { kind: "deleteRenumber"; k: number }
  | { kind: "swap"; i: number; j: number }
  | { kind: "move"; i: number; j: number }
  | { kind: "insert"; k: number };

/** Applies one tampering; returns the rows and the stored positions it may be reported at, and the kinds that explain it. */
function tamper(original: readonly Stored[], op: Op): { rows: Stored[]; lo: number; hi: number; kinds: TamperKind[] } {
  const rows = original.map((r) => ({ ...r }));
  const at = (seq: number) => rows[seq - 1] as Stored;
  switch (op.kind) {
    case "edit":
      at(op.k).body = at(op.k).body.replace("}", ',"x":1}');
      return { rows, lo: op.k, hi: op.k, kinds: ["edited"] };
    case "editRehash": {
      const r = at(op.k);
      r.body = r.body.replace("}", ',"x":1}');
      r.hash = hashOf(r.prevHash, r.body);
      return { rows, lo: op.k, hi: op.k + 1, kinds: ["chain-break"] };
    }
    case "delete":
      return { rows: rows.filter((r) => r.seq !== op.k), lo: op.k, hi: op.k, kinds: ["missing"] };
    case "deleteRenumber":
      return { rows: renumber(rows.filter((r) => r.seq !== op.k)), lo: op.k, hi: op.k, kinds: ["chain-break"] };
    case "swap": {
      const [i, j] = [Math.min(op.i, op.j), Math.max(op.i, op.j)];
      const [a, b] = [at(i), at(j)];
      rows[i - 1] = b;
      rows[j - 1] = a;
      return { rows: renumber(rows), lo: i, hi: j + 1, kinds: ["reordered"] };
    }
    case "move": {
      const [moved] = rows.splice(op.i - 1, 1);
      rows.splice(op.j - 1, 0, moved as Stored);
      return { rows: renumber(rows), lo: Math.min(op.i, op.j), hi: Math.max(op.i, op.j) + 1, kinds: ["reordered"] };
    }
    case "insert": {
      const prev = op.k === 1 ? GENESIS_HASH : at(op.k - 1).hash;
      const body = JSON.stringify({ id: "forged" });
      rows.splice(op.k - 1, 0, { seq: 0, id: "forged", body, prevHash: prev, hash: hashOf(prev, body) });
      return { rows: renumber(rows), lo: op.k, hi: op.k + 1, kinds: ["inserted"] };
    }
  }
}

const opFor = (n: number): fc.Arbitrary<Op> => {
  const pos = fc.integer({ min: 1, max: n });
  // The last entry deleted or rewritten leaves no later entry to contradict it: only a checkpoint shows it.
  const before = fc.integer({ min: 1, max: n - 1 });
  return fc.oneof(
    pos.map((k): Op => ({ kind: "edit", k })),
    before.map((k): Op => ({ kind: "editRehash", k })),
    before.map((k): Op => ({ kind: "delete", k })),
    before.map((k): Op => ({ kind: "deleteRenumber", k })),
    fc.tuple(pos, pos).filter(([i, j]) => i !== j).map(([i, j]): Op => ({ kind: "swap", i, j })),
    fc.tuple(pos, pos).filter(([i, j]) => i !== j).map(([i, j]): Op => ({ kind: "move", i, j })),
    pos.map((k): Op => ({ kind: "insert", k })),
  );
};

describe("the chain walker", () => {
  it("finds nothing wrong with an untouched log", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 30 }), async (n) => {
        expect(await walk(chainOf(n))).toEqual([]);
      }),
    );
  });

  it("detects every edit, deletion, reordering and insertion, names its kind, and places it where it happened", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 20 }).chain((n) => fc.tuple(fc.constant(n), opFor(n))),
        async ([n, op]) => {
          const { rows, lo, hi, kinds } = tamper(chainOf(n), op);
          const problems = await walk(rows);
          expect(problems.length).toBeGreaterThan(0);
          expect(problems.some((p) => kinds.includes(p.kind))).toBe(true);
          for (const p of problems) {
            // Problems sit where the tampering happened.
            expect(p.seq).toBeGreaterThanOrEqual(lo);
            expect(p.seq).toBeLessThanOrEqual(hi);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it.each([
    ["an edited event", { kind: "edit", k: 4 }, [{ kind: "edited", seq: 4, eventId: "e4" }]],
    ["an event edited and rehashed", { kind: "editRehash", k: 4 }, [{ kind: "chain-break", seq: 5, eventId: "e5" }]],
    ["a deleted event", { kind: "delete", k: 4 }, [{ kind: "missing", seq: 4, eventId: null }]],
    ["a deleted event, later ones renumbered", { kind: "deleteRenumber", k: 4 }, [{ kind: "chain-break", seq: 4, eventId: "e5" }]],
    [
      "two adjacent events swapped",
      { kind: "swap", i: 4, j: 5 },
      [
        { kind: "reordered", seq: 4, eventId: "e5" },
        { kind: "reordered", seq: 5, eventId: "e4" },
        { kind: "reordered", seq: 6, eventId: "e6" },
      ],
    ],
    ["a forged event inserted", { kind: "insert", k: 4 }, [{ kind: "inserted", seq: 4, eventId: "forged" }]],
  ] as const)("reports %s exactly", async (_name, op, expected) => {
    const problems = await walk(tamper(chainOf(8), op).rows);
    expect(problems.map(({ kind, seq, eventId }) => ({ kind, seq, eventId }))).toEqual(expected);
  });

  it("explains a chain break in words that name both events", async () => {
    const [problem] = await walk(tamper(chainOf(8), { kind: "editRehash", k: 4 }).rows);
    expect(problem?.message).toMatch(/event e5 \(seq 5\) was written after an event with hash .* no longer in the log: the event stored before it, event e4 \(seq 4\), was rewritten/);
  });
});
