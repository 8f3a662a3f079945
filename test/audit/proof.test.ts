import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { generateCheckpointKey, memoryCheckpointSink, parseSignerKey, signCheckpoint, splitNotes } from "../../src/audit/checkpoint.ts";
import { consistencyProof, EMPTY_ROOT, Frontier, inclusionProof, rangeHash, type TreeNode } from "../../src/audit/merkle.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { leafHash, nodeHash, parseVerifierKey, verifyCheckpoint, verifyConsistency, verifyInclusion, verifyProof, type Verdict } from "../../src/audit/proof-verifier.ts";

/** The value of an accepted verdict; fails the test with the reason otherwise. */
function accepted<T>(verdict: Verdict<T>): T {
  if (!verdict.ok) throw new Error(`refused: ${verdict.reason}`);
  return verdict.value;
}

/** The reason of a refused verdict; fails the test when it was accepted. */
function refusal(verdict: Verdict<unknown>): string {
  if (verdict.ok) throw new Error("accepted, but should have been refused");
  return verdict.reason;
}
import { InvalidInput } from "../../src/index.ts";
import { eventFor, world } from "./fixtures.ts";

/*
 * The Merkle tree and its proofs (RFC 9162), the signed checkpoints (C2SP
 * signed note and tlog-checkpoint), and the separate verifier a third party
 * runs with the public key alone.
 */

/** MTH straight from RFC 9162's definition, to check the store's incremental tree against. */
function mth(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return createHash("sha256").digest();
  if (leaves.length === 1) return leaves[0] as Buffer;
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

function tree(n: number) {
  const leaves = Array.from({ length: n }, (_, i) => leafHash(`entry ${String(i)}`));
  const nodes = new Map<string, Buffer>();
  const frontier = new Frontier();
  const roots: Buffer[] = [EMPTY_ROOT];
  for (const leaf of leaves) {
    frontier.push(leaf, (node: TreeNode) => nodes.set(`${String(node.level)}/${String(node.index)}`, node.hash));
    roots.push(frontier.root());
  }
  const lookup = (level: number, index: number) => Promise.resolve(level === 0 ? (leaves[index] as Buffer) : (nodes.get(`${String(level)}/${String(index)}`) as Buffer));
  return { leaves, roots, lookup };
}

describe("the Merkle tree", () => {
  it("hashes leaves and nodes with RFC 9162's domain separation", () => {
    expect(leafHash("")).toEqual(createHash("sha256").update(Buffer.of(0)).digest());
    const [a, b] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
    expect(nodeHash(a, b)).toEqual(createHash("sha256").update(Buffer.of(1)).update(a).update(b).digest());
    expect(EMPTY_ROOT).toEqual(createHash("sha256").digest());
  });

  it("has, at every size, the root of RFC 9162's definition, and inclusion and consistency proofs that verify", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 80 }), fc.nat(), fc.nat(), async (n, i, j) => {
        const t = tree(n);
        expect(t.roots[n]).toEqual(mth(t.leaves));
        expect(await rangeHash(0, n, t.lookup)).toEqual(t.roots[n]);
        const m = i % n;
        const proof = await inclusionProof(m, 0, n, t.lookup);
        expect(verifyInclusion(m, n, t.leaves[m] as Buffer, proof, t.roots[n] as Buffer)).toBe(true);
        const size1 = (j % n) + 1;
        const consistency = await consistencyProof(size1, n, t.lookup);
        expect(verifyConsistency(size1, n, consistency, t.roots[size1] as Buffer, t.roots[n] as Buffer)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses proofs of another leaf, another place, or an altered path", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 64 }), fc.nat(), async (n, i) => {
        const t = tree(n);
        const m = i % n;
        const proof = await inclusionProof(m, 0, n, t.lookup);
        const root = t.roots[n] as Buffer;
        const leaf = t.leaves[m] as Buffer;
        expect(verifyInclusion(m, n, leafHash("forged"), proof, root)).toBe(false);
        expect(verifyInclusion((m + 1) % n, n, leaf, proof, root)).toBe(false);
        if (proof.length > 0) expect(verifyInclusion(m, n, leaf, [Buffer.alloc(32), ...proof.slice(1)], root)).toBe(false);
        const size1 = Math.max(1, m);
        if (size1 < n) {
          const consistency = await consistencyProof(size1, n, t.lookup);
          expect(verifyConsistency(size1, n, consistency, leafHash("other history"), root)).toBe(false);
          expect(verifyConsistency(size1, n, [], t.roots[size1] as Buffer, root)).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("signed checkpoints", () => {
  const key = generateCheckpointKey("audit.test/log");

  it("are C2SP signed notes of C2SP checkpoints: origin, size, base64 root, a blank line, an em-dash signature line", () => {
    const note = signCheckpoint(parseSignerKey(key.signerKey), "audit.test/log", 42, Buffer.alloc(32, 7));
    const [text, signature] = note.split("\n\n");
    expect(text).toBe(`audit.test/log\n42\n${Buffer.alloc(32, 7).toString("base64")}`);
    expect(signature).toMatch(/^\u2014 audit\.test\/log [A-Za-z0-9+/]{91}=\n$/);
    const sig = Buffer.from((signature ?? "").trim().split(" ")[2] ?? "", "base64");
    // The key's base64 may itself hold '+': it is everything after the second one.
    const pub = Buffer.from(/^[^+]*\+[^+]*\+(.*)$/.exec(key.verifierKey)?.[1] ?? "", "base64").subarray(1);
    // The key id is SHA-256(name || 0x0A || 0x01 || public key)[:4], as the spec recommends.
    expect(sig.subarray(0, 4)).toEqual(createHash("sha256").update("audit.test/log\n").update(Buffer.of(1)).update(pub).digest().subarray(0, 4));
    expect(accepted(verifyCheckpoint(note, key.verifierKey))).toMatchObject({ origin: "audit.test/log", size: 42, rootHash: Buffer.alloc(32, 7) });
  });

  it.each<[string, (note: string) => string, RegExp]>([
    ["a changed size", (n) => n.replace("\n42\n", "\n43\n"), /does not verify/],
    ["a changed root", (n) => n.replace(Buffer.alloc(32, 7).toString("base64"), Buffer.alloc(32, 8).toString("base64")), /does not verify/],
    ["its signature line removed", (n) => n.replace(/\u2014 .*\n$/, ""), /malformed signature line/],
    ["a control character", (n) => n.replace("audit.test/log\n42", "audit.test/log\r\n42"), /control characters/],
  ])("refuses a checkpoint with %s", (_what, change, message) => {
    const note = signCheckpoint(parseSignerKey(key.signerKey), "audit.test/log", 42, Buffer.alloc(32, 7));
    expect(refusal(verifyCheckpoint(change(note), key.verifierKey))).toMatch(message);
  });

  it("refuses malformed keys with the reason, never echoing a signing key", () => {
    expect(refusal(parseVerifierKey("no-plus-signs"))).toMatch(/has the form/);
    expect(refusal(parseVerifierKey(key.verifierKey.replace(/\+[0-9a-f]{8}\+/, "+00000000+")))).toMatch(/id does not match/);
    expect(() => parseSignerKey("PRIVATE+KEY+name+00000000+AAAA")).toThrow(InvalidInput);
    expect(() => parseSignerKey(key.signerKey.replace(/\+[0-9a-f]{8}\+/, "+00000000+"))).toThrow(/id does not match/);
    expect(() => generateCheckpointKey("has space")).toThrow(InvalidInput);
  });

  it.each([
    ["a space", "has space"],
    ["a '+'", "a+b"],
    ["a NUL", "log\u0000"],
    ["an escape sequence", "log\u001b[2J"],
    ["a C1 control", "log\u0085"],
    ["a lone surrogate", "log\udfff"],
    ["nothing", ""],
    ["129 characters", "x".repeat(129)],
  ])("makes no key whose name holds %s, and accepts no verifier key named so", (_what, name) => {
    expect(() => generateCheckpointKey(name)).toThrow(/1 to 128 characters, with no spaces, '\+' or control characters/);
    const named = key.verifierKey.replace(/^[^+]*/, name);
    // A '+' splits the key differently, so it is refused for the parts it leaves; every other name for itself.
    if (name.length <= 128) expect(refusal(parseVerifierKey(named))).toMatch(name.includes("+") ? /./ : /name must be non-empty/);
  });

  it("splits a checkpoint file back into its notes", () => {
    const signer = parseSignerKey(key.signerKey);
    const notes = [1, 2, 3].map((n) => signCheckpoint(signer, "audit.test/log", n, Buffer.alloc(32, n)));
    expect(splitNotes(notes.map((n) => `${n}\n`).join(""))).toEqual(notes);
  });
});

describe("the separate verifier", () => {
  it("imports nothing but Node's crypto, so a third party can check a proof with it alone", () => {
    const source = readFileSync(new URL("../../src/audit/proof-verifier.ts", import.meta.url), "utf8");
    expect([...source.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1])).toEqual(["node:crypto"]);
  });

  it("verifies an event's proof with the public key, and refuses it altered, re-signed or against another key", async () => {
    const key = generateCheckpointKey("audit.test/proofs");
    const sink = memoryCheckpointSink();
    const store = await openAuditStore({ kind: "sqlite", path: ":memory:", checkpoints: { key: key.signerKey, sink, everyEntries: 5 } });
    const w = world();
    const ids: string[] = [];
    for (let i = 0; i < 13; i++) {
      const e = eventFor(w.searchTool, { action: "tool.call", tool: "search" }, { at: 1000 + i });
      ids.push(e.id);
      await store.write(e);
    }
    await store.checkpoint();
    const bundle = JSON.parse(JSON.stringify(await store.prove(ids[6] ?? ""))) as { checkpoint: string; entries: { index: number; leaf: string; proof: string[] }[] };
    const verified = accepted(verifyProof(bundle, key.verifierKey));
    expect(verified.checkpoint).toMatchObject({ origin: "audit.test/proofs", size: 13 });
    expect(verified.entries).toHaveLength(1);
    expect(verified.entries[0]).toMatchObject({ index: 6, body: { id: ids[6], entry: "event" } });
    expect(verified.entries[0]?.links).toHaveLength(w.searchTool.lineage.length);

    const altered = { ...bundle, entries: [{ ...bundle.entries[0], leaf: (bundle.entries[0]?.leaf ?? "").replace('"resultBytes":128', '"resultBytes":0') }] };
    expect(refusal(verifyProof(altered, key.verifierKey))).toMatch(/is not in the tree of 13 entries/);
    const moved = { ...bundle, entries: [{ ...bundle.entries[0], index: 7 }] };
    expect(refusal(verifyProof(moved, key.verifierKey))).toMatch(/is not in the tree/);
    const other = generateCheckpointKey("audit.test/proofs");
    expect(refusal(verifyProof(bundle, other.verifierKey))).toMatch(/no signature by audit\.test\/proofs/);
    const resigned = { ...bundle, checkpoint: signCheckpoint(parseSignerKey(other.signerKey), "audit.test/proofs", 13, Buffer.alloc(32)) };
    expect(refusal(verifyProof(resigned, key.verifierKey))).toMatch(/no signature by audit\.test\/proofs/);
    expect(refusal(verifyProof({ ...bundle, format: "other" }, key.verifierKey))).toMatch(/format/);
    expect(refusal(verifyProof({ ...bundle, entries: [{ ...bundle.entries[0], proof: ["short"] }] }, key.verifierKey))).toMatch(/32-byte base64 hashes/);

    // An event after the last checkpoint cannot be proved until the next one.
    const late = eventFor(w.searchTool, { action: "tool.call", tool: "search" });
    await store.write(late);
    const sinkNotes = [...sink.notes];
    await expect(store.prove(late.id, { checkpoints: sinkNotes })).rejects.toThrow(/no signed checkpoint covers event/);
    await expect(store.prove("nope")).rejects.toThrow(InvalidInput);
    await store.close();
  });
});

describe("when checkpoints are written", () => {
  it("after everyMs when fewer than everyEntries came, and once more on close", async () => {
    const key = generateCheckpointKey("audit.test/timer");
    const sink = memoryCheckpointSink();
    const store = await openAuditStore({ kind: "sqlite", path: ":memory:", checkpoints: { key: key.signerKey, sink, everyEntries: 1000, everyMs: 20 } });
    const w = world();
    await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(sink.notes.map((n) => accepted(verifyCheckpoint(n, key.verifierKey)).size)).toEqual([1]);
    await store.write(eventFor(w.alice, { action: "tool.call", tool: "search" }));
    await store.close();
    expect(sink.notes.map((n) => accepted(verifyCheckpoint(n, key.verifierKey)).size)).toEqual([1, 2]);
  });
});
