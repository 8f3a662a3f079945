import { nodeHash } from "./proof-verifier.js";

/*
 * The log as a Merkle tree in the style of RFC 9162: leaf i is the entry at
 * seq i + 1. The store keeps every leaf hash (in its row) and every complete,
 * aligned subtree above the leaves (audit_tree: level ≥ 1, index), so the
 * root of any earlier size, and inclusion and consistency proofs against it,
 * are a few lookups away. Every range the RFC's recursive definition splits
 * a tree into is a complete aligned subtree, or a right edge made of them.
 */

/** A complete subtree on the right edge of the tree: 2^level leaves. */
export interface FrontierNode {
  readonly level: number;
  readonly hash: Buffer;
}

/** A subtree hash to store: 2^level leaves starting at leaf index × 2^level (level ≥ 1). */
export interface TreeNode {
  readonly level: number;
  readonly index: number;
  readonly hash: Buffer;
}

/** Looks up a stored subtree hash: level 0 is a leaf. */
export type SubtreeLookup = (level: number, index: number) => Promise<Buffer>;

/** The largest power of two smaller than n (n ≥ 2). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The right edge of a growing tree: enough to append leaves and to compute
 * the root, in O(log n) memory.
 */
export class Frontier {
  #size: number;
  readonly #nodes: FrontierNode[];

  constructor(size = 0, nodes: readonly FrontierNode[] = []) {
    this.#size = size;
    this.#nodes = [...nodes];
  }

  get size(): number {
    return this.#size;
  }

  /** The complete subtrees of the right edge, largest first: those of `frontierSlots(size)`. */
  get nodes(): readonly FrontierNode[] {
    return this.#nodes;
  }

  copy(): Frontier {
    return new Frontier(this.#size, this.#nodes);
  }

  /** Appends one leaf hash, and reports each subtree it completes (to be stored). */
  push(leaf: Buffer, completed: (node: TreeNode) => void): void {
    const index = this.#size;
    let node: FrontierNode = { level: 0, hash: leaf };
    for (let last = this.#nodes.at(-1); last?.level === node.level; last = this.#nodes.at(-1)) {
      this.#nodes.pop();
      node = { level: node.level + 1, hash: nodeHash(last.hash, node.hash) };
      completed({ level: node.level, index: index >> node.level, hash: node.hash });
    }
    this.#nodes.push(node);
    this.#size += 1;
  }

  /** MTH of all leaves so far; the hash of the empty string for an empty tree. */
  root(): Buffer {
    const nodes = this.#nodes;
    if (nodes.length === 0) return EMPTY_ROOT;
    let acc = (nodes.at(-1) as FrontierNode).hash;
    for (let i = nodes.length - 2; i >= 0; i--) acc = nodeHash((nodes[i] as FrontierNode).hash, acc);
    return acc;
  }
}

/** RFC 9162: the hash of an empty tree is the hash of the empty string. */
export const EMPTY_ROOT = Buffer.from("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "hex");

/** The stored subtrees (level, index) that make up the right edge of the tree of `size` leaves, largest first. */
export function frontierSlots(size: number): { readonly level: number; readonly index: number }[] {
  const slots: { level: number; index: number }[] = [];
  let start = 0;
  for (let level = 52; level >= 0; level--) {
    const width = 2 ** level;
    if (start + width > size) continue;
    slots.push({ level, index: start / width });
    start += width;
  }
  return slots;
}

/** MTH(D[a:b]) for a range of the RFC's decomposition: its left parts are always aligned complete subtrees. */
export async function rangeHash(a: number, b: number, lookup: SubtreeLookup): Promise<Buffer> {
  const n = b - a;
  if (n === 0) return EMPTY_ROOT;
  if ((n & (n - 1)) === 0 && a % n === 0) return lookup(Math.log2(n), a / n);
  const k = split(n);
  return nodeHash(await rangeHash(a, a + k, lookup), await rangeHash(a + k, b, lookup));
}

/** RFC 9162 PATH(m, D[a:b]): the inclusion proof of leaf m in the tree of leaves a..b, leaf first. */
export async function inclusionProof(m: number, a: number, b: number, lookup: SubtreeLookup): Promise<Buffer[]> {
  const n = b - a;
  if (n <= 1) return [];
  const k = split(n);
  if (m < k) return [...(await inclusionProof(m, a, a + k, lookup)), await rangeHash(a + k, b, lookup)];
  return [...(await inclusionProof(m - k, a + k, b, lookup)), await rangeHash(a, a + k, lookup)];
}

/** RFC 9162 PROOF(m, D[n]): the consistency proof from the tree of m leaves to the tree of n. */
export async function consistencyProof(m: number, n: number, lookup: SubtreeLookup): Promise<Buffer[]> {
  if (m <= 0 || m >= n) return [];
  const sub = async (m: number, a: number, b: number, whole: boolean): Promise<Buffer[]> => {
    const size = b - a;
    if (m === size) return whole ? [] : [await rangeHash(a, b, lookup)];
    const k = split(size);
    if (m <= k) return [...(await sub(m, a, a + k, whole)), await rangeHash(a + k, b, lookup)];
    return [...(await sub(m - k, a + k, b, false)), await rangeHash(a, a + k, lookup)];
  };
  return sub(m, 0, n, true);
}

/** The tree of `size` leaves rebuilt from its complete subtrees' hashes (largest first, as `frontierSlots(size)` names them), to grow it from there. */
export function frontierFrom(size: number, hashes: readonly Buffer[]): Frontier {
  const slots = frontierSlots(size);
  if (slots.length !== hashes.length) throw new Error(`the tree of ${String(size)} leaves has ${String(slots.length)} complete subtrees on its right edge, not ${String(hashes.length)}`);
  return new Frontier(size, slots.map((s, i) => ({ level: s.level, hash: hashes[i] as Buffer })));
}
