/**
 * Checks an agentcap audit proof with the log's public key alone. This
 * module imports nothing but Node's crypto, so a third party can read it in
 * one sitting (or copy it) and trust nothing else of agentcap:
 *
 * - checkpoints are C2SP signed notes (c2sp.org/signed-note) whose text is a
 *   C2SP checkpoint (c2sp.org/tlog-checkpoint): origin line, tree size,
 *   base64 root hash; signed with Ed25519 (signature type 0x01);
 * - the log is a Merkle tree in the style of RFC 9162 (Certificate
 *   Transparency v2): leaf hash SHA-256(0x00 || leaf), node hash
 *   SHA-256(0x01 || left || right); inclusion and consistency proofs are
 *   checked with the algorithms of its sections 2.1.3.2 and 2.1.4.2.
 *
 * A leaf is the entry's text as the log hashed it: its canonical JSON body,
 * then, for an event or an intent, one line per lineage link (root first)
 * holding that link's canonical JSON.
 *
 * Nothing here throws for bad input: every check answers with a Verdict, the
 * value or the reason it was refused, so the module needs no error classes
 * of agentcap's.
 */
import { createHash, createPublicKey, hash, verify as verifySignature } from "node:crypto";

/** A verifier key in the signed-note form `<name>+<8 hex key id>+<base64(0x01 || 32-byte Ed25519 key)>`. */
export interface VerifierKey {
  readonly name: string;
  readonly keyId: Buffer;
  readonly publicKey: Buffer;
}

/** What a valid checkpoint says. */
export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Buffer;
  /** The whole signed note, as given. */
  readonly note: string;
  /** Present when the checkpoint also records a prune by retention: entries 1 to `size` were deleted from the log on purpose. */
  readonly retention?: Retention;
}

/**
 * A prune by retention, signed as extension lines of the checkpoint of the
 * tree it cut at (size N): entries 1 to N were deleted because they began
 * before `before`. It carries what the retained entries need to be checked
 * without the pruned ones: the chain hash of entry N, and the hashes of the
 * complete subtrees that make up the tree of N leaves (largest first), which
 * hash to the checkpoint's root, so the tree can be grown from N.
 */
export interface Retention {
  /** The last entry pruned: the checkpoint's size. */
  readonly upTo: number;
  /** The cutoff: every pruned entry began before it (ms since the epoch). */
  readonly before: number;
  /** When the prune was made (ms since the epoch). */
  readonly at: number;
  /** The chain hash of entry `upTo` (hex): entry `upTo + 1` must say it follows it. */
  readonly chainHash: string;
  /** The tree of `upTo` leaves as its complete subtrees, largest first. */
  readonly frontier: readonly Buffer[];
}

/** An exported entry: its place in the log, its leaf text and the inclusion proof (base64 hashes, leaf to root). */
export interface ProvedEntry {
  readonly index: number;
  readonly leaf: string;
  readonly proof: readonly string[];
}

/** What `agentcap audit prove` writes. */
export interface ProofBundle {
  readonly format: "agentcap.audit.proof/v1";
  readonly checkpoint: string;
  readonly entries: readonly ProvedEntry[];
}

/** A proof that checked out: the checkpoint, and each entry's body and lineage links, parsed. */
export interface VerifiedProof {
  readonly checkpoint: Omit<Checkpoint, "note" | "rootHash"> & { readonly rootHash: string };
  readonly entries: readonly { readonly index: number; readonly body: unknown; readonly links: readonly unknown[] }[];
}

/** What a check found: the value, or why it was refused. */
export type Verdict<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

const accept = <T>(value: T): Verdict<T> => ({ ok: true, value });
const refuse = (reason: string): { readonly ok: false; readonly reason: string } => ({ ok: false, reason });

const ED25519 = 0x01;
const EM_DASH = "\u2014";

const LEAF = Buffer.of(0);
const NODE = Buffer.of(1);

/** SHA-256(0x00 || leaf): the hash of one log entry. */
export function leafHash(leaf: string | Buffer): Buffer {
  return hash("sha256", Buffer.concat([LEAF, typeof leaf === "string" ? Buffer.from(leaf, "utf8") : leaf]), "buffer");
}

/** SHA-256(0x01 || left || right): an interior node. */
export function nodeHash(left: Buffer, right: Buffer): Buffer {
  return hash("sha256", Buffer.concat([NODE, left, right], 65), "buffer");
}

/** The signed-note key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]. */
export function keyIdOf(name: string, publicKey: Buffer): Buffer {
  return createHash("sha256").update(name).update("\n").update(Buffer.of(ED25519)).update(publicKey).digest().subarray(0, 4);
}

/**
 * A signed-note key name: non-empty well-formed text with no spaces or '+'
 * (C2SP), and no control characters, which a terminal or a note's last line
 * would act on instead of showing.
 */
export const KEY_NAME = /^[^\s+\p{Cc}\p{Cs}]+$/u;

/** Parses a verifier key string. */
export function parseVerifierKey(text: string): Verdict<VerifierKey> {
  // The base64 key, last, may itself hold '+'; the name and id never do.
  const parts = /^([^+]*)\+([^+]*)\+(.*)$/s.exec(text.trim());
  if (parts === null) return refuse("a verifier key has the form <name>+<key id>+<base64 key>");
  const [, name = "", hex = "", b64 = ""] = parts;
  if (!KEY_NAME.test(name)) return refuse("the verifier key's name must be non-empty, with no spaces, '+' or control characters");
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 33 || raw[0] !== ED25519 || raw.toString("base64") !== b64) return refuse("the verifier key is not an Ed25519 key (0x01 followed by 32 bytes, base64)");
  const publicKey = raw.subarray(1);
  const keyId = keyIdOf(name, publicKey);
  if (!/^[0-9a-f]{8}$/.test(hex) || keyId.toString("hex") !== hex) return refuse("the verifier key's id does not match its name and key");
  return accept({ name, keyId, publicKey });
}

/** A public key object for Node's Ed25519 verification. */
function nodeKey(publicKey: Buffer) {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: publicKey.toString("base64url") }, format: "jwk" });
}

/**
 * Verifies a signed checkpoint with `key` and says what it holds. Refused
 * when the note is malformed, carries no signature by this key, or a
 * signature by this key does not verify.
 */
export function verifyCheckpoint(note: string, key: VerifierKey | string): Verdict<Checkpoint> {
  const parsed = typeof key === "string" ? parseVerifierKey(key) : accept(key);
  if (!parsed.ok) return parsed;
  const k = parsed.value;
  // Signed notes are UTF-8 with no control characters but newline.
  if (Array.from(note).some((c) => c < " " && c !== "\n")) return refuse("a signed note holds no control characters other than newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) return refuse("a signed note is its text, a blank line, then signature lines");
  const text = note.slice(0, split + 1);
  const signatures = note.slice(split + 2, -1).split("\n");
  let verified = false;
  for (const line of signatures) {
    const m = new RegExp(`^${EM_DASH} (\\S+) ([A-Za-z0-9+/]+={0,2})$`).exec(line);
    if (m === null) return refuse(`malformed signature line in signed note: ${JSON.stringify(line)}`);
    const sig = Buffer.from(m[2] ?? "", "base64");
    if (m[1] !== k.name || sig.length < 4 || !sig.subarray(0, 4).equals(k.keyId)) continue;
    if (sig.length !== 68 || !verifySignature(null, Buffer.from(text, "utf8"), nodeKey(k.publicKey), sig.subarray(4))) {
      return refuse(`the signature by ${k.name} does not verify: the checkpoint was altered or signed by another key`);
    }
    verified = true;
  }
  if (!verified) return refuse(`the checkpoint carries no signature by ${k.name}`);
  return readCheckpointText(text, note);
}

/** What a signed note says as a checkpoint, its signatures not checked: for a log verified against itself only. */
export function readUnsignedCheckpoint(note: string): Verdict<Checkpoint> {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) return refuse("a signed note is its text, a blank line, then signature lines");
  return readCheckpointText(note.slice(0, split + 1), note);
}

/** What a signed note's text says as a checkpoint. */
function readCheckpointText(text: string, note: string): Verdict<Checkpoint> {
  const lines = text.slice(0, -1).split("\n");
  const [origin = "", sizeText = "", rootText = "", ...extensions] = lines;
  if (origin === "" || !/^(0|[1-9][0-9]{0,15})$/.test(sizeText)) return refuse("a checkpoint's text is its origin, its tree size and its root hash, one per line");
  const rootHash = Buffer.from(rootText, "base64");
  if (rootHash.length !== 32 || rootHash.toString("base64") !== rootText) return refuse("a checkpoint's root hash must be 32 bytes in base64");
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) return refuse("the checkpoint's tree size is too large");
  if (!(extensions[0] ?? "").startsWith(RETENTION_TAG)) return accept({ origin, size, rootHash, note });
  const retention = readRetention(extensions, size, rootHash);
  return retention.ok ? accept({ origin, size, rootHash, note, retention: retention.value }) : retention;
}

/** The first extension line of a checkpoint that records a prune by retention. */
export const RETENTION_TAG = "agentcap-retention/v1 ";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The extension lines of a retention checkpoint: what was pruned, then the chain hash and the subtrees of the tree it cut at. */
export function retentionLines(r: Retention): string[] {
  return [
    `${RETENTION_TAG}pruned 1-${String(r.upTo)} before ${new Date(r.before).toISOString()} at ${new Date(r.at).toISOString()}`,
    `chain ${r.chainHash}`,
    `frontier ${r.frontier.map((h) => h.toString("base64")).join(" ")}`,
  ];
}

function readRetention(lines: readonly string[], size: number, root: Buffer): Verdict<Retention> {
  const bad = refuse("a retention checkpoint's extension lines are: agentcap-retention/v1 pruned 1-<size> before <time> at <time>, chain <hex>, frontier <base64 hashes>");
  if (lines.length !== 3) return bad;
  const what = new RegExp(`^${RETENTION_TAG}pruned 1-(\\d+) before (\\S+) at (\\S+)$`).exec(lines[0] ?? "");
  const chain = /^chain ([0-9a-f]{64})$/.exec(lines[1] ?? "");
  const frontierText = /^frontier ([A-Za-z0-9+/= ]+)$/.exec(lines[2] ?? "");
  if (what === null || chain === null || frontierText === null) return bad;
  const [, upToText = "", beforeText = "", atText = ""] = what;
  if (Number(upToText) !== size || size === 0) return refuse("a retention checkpoint prunes entries 1 to its own size, at least one");
  if (!ISO_TIME.test(beforeText) || !ISO_TIME.test(atText)) return bad;
  const frontier = (frontierText[1] ?? "").split(" ").map((h) => Buffer.from(h, "base64"));
  if (frontier.some((h) => h.length !== 32)) return bad;
  // The tree of `size` leaves is one complete subtree per bit set in `size`; folded from the right they give its root.
  let bits = 0;
  for (let n = size; n > 0; n = Math.floor(n / 2)) bits += n % 2;
  let acc: Buffer | undefined = frontier.at(-1);
  for (let i = frontier.length - 2; i >= 0 && acc !== undefined; i--) acc = nodeHash(frontier[i] as Buffer, acc);
  if (frontier.length !== bits || acc === undefined || !acc.equals(root)) return refuse("a retention checkpoint's subtrees do not hash to the root it signed");
  return accept({ upTo: size, before: Date.parse(beforeText), at: Date.parse(atText), chainHash: chain[1] ?? "", frontier });
}

/** RFC 9162 2.1.3.2: whether `proof` shows the leaf at `index` in the tree of `size` leaves with root `root`. */
export function verifyInclusion(index: number, size: number, leaf: Buffer, proof: readonly Buffer[], root: Buffer): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 2.1.4.2: whether `proof` shows that the tree of `size1` leaves (root `root1`) is a prefix of the tree of `size2` (root `root2`). */
export function verifyConsistency(size1: number, size2: number, proof: readonly Buffer[], root1: Buffer, root2: Buffer): boolean {
  if (!Number.isSafeInteger(size1) || !Number.isSafeInteger(size2) || size1 < 0 || size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && root1.equals(root2);
  if (size1 === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  // When size1 is a power of two, its root is the first node of the path.
  const path = (size1 & (size1 - 1)) === 0 ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Buffer;
  let sr = path[0] as Buffer;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(root1) && sr.equals(root2);
}

/** A list of base64 hashes, or null when it is not one. */
function hashes(list: unknown): Buffer[] | null {
  if (!Array.isArray(list)) return null;
  const out: Buffer[] = [];
  for (const h of list) {
    const b = typeof h === "string" ? Buffer.from(h, "base64") : Buffer.alloc(0);
    if (b.length !== 32) return null;
    out.push(b);
  }
  return out;
}

/** Splits a leaf into its body and its lineage links, parsed. */
export function parseLeaf(leaf: string): Verdict<{ readonly body: unknown; readonly links: readonly unknown[] }> {
  const [body = "", ...links] = leaf.split("\n");
  try {
    return accept({ body: JSON.parse(body) as unknown, links: links.map((l) => JSON.parse(l) as unknown) });
  } catch {
    return refuse("a leaf is lines of JSON: the entry's body, then its lineage links");
  }
}

/**
 * Verifies a proof bundle with the log's verifier key: the checkpoint's
 * signature, then each entry's inclusion in the tree the checkpoint signed.
 * Accepted with the checkpoint and the entries parsed, or refused saying
 * what does not hold.
 */
export function verifyProof(bundle: unknown, key: VerifierKey | string): Verdict<VerifiedProof> {
  if (typeof bundle !== "object" || bundle === null) return refuse("a proof is a JSON object as agentcap audit prove writes it");
  const b = bundle as Partial<Record<keyof ProofBundle, unknown>>;
  if (b.format !== "agentcap.audit.proof/v1") return refuse('a proof must say format: "agentcap.audit.proof/v1"');
  if (typeof b.checkpoint !== "string") return refuse("a proof must carry its signed checkpoint");
  if (!Array.isArray(b.entries) || b.entries.length === 0) return refuse("a proof must carry at least one entry");
  const checked = verifyCheckpoint(b.checkpoint, key);
  if (!checked.ok) return checked;
  const checkpoint = checked.value;
  const entries: VerifiedProof["entries"][number][] = [];
  for (const [i, e] of (b.entries as unknown[]).entries()) {
    const entry = (typeof e === "object" && e !== null ? e : {}) as Partial<Record<keyof ProvedEntry, unknown>>;
    const where = `entries.${String(i)}`;
    if (typeof entry.index !== "number" || typeof entry.leaf !== "string") return refuse(`${where} needs an index and a leaf`);
    const proof = hashes(entry.proof);
    if (proof === null) return refuse(`${where}.proof must be a list of 32-byte base64 hashes`);
    if (!verifyInclusion(entry.index, checkpoint.size, leafHash(entry.leaf), proof, checkpoint.rootHash)) {
      return refuse(`${where} (index ${String(entry.index)}) is not in the tree of ${String(checkpoint.size)} entries the checkpoint signed`);
    }
    const leaf = parseLeaf(entry.leaf);
    if (!leaf.ok) return leaf;
    entries.push({ index: entry.index, ...leaf.value });
  }
  return accept({ checkpoint: { origin: checkpoint.origin, size: checkpoint.size, rootHash: checkpoint.rootHash.toString("base64") }, entries });
}

/** The format `agentcap audit export --format jsonl` writes, one JSON object per line. */
export const EXPORT_FORMAT = "agentcap.audit.export/v1";

/**
 * One line of an export: the header (the signed checkpoint every entry is
 * proved against, and the range of sequence numbers that follows), one line
 * per entry, and the trailer (how many entries, and how many newer ones no
 * checkpoint covered yet).
 */
export type ExportLine =
  | { readonly format: typeof EXPORT_FORMAT; readonly checkpoint: string; readonly from: number; readonly to: number; readonly pruned?: string }
  | { readonly seq: number; readonly leaf: string; readonly proof: readonly string[] }
  | { readonly end: true; readonly entries: number; readonly uncovered: number };

/** What a verified export holds: the checkpoint, the range, and each entry's body and links. */
export interface VerifiedExport {
  readonly checkpoint: { readonly origin: string; readonly size: number };
  readonly from: number;
  readonly to: number;
  readonly entries: number;
  /** When the export starts where the log was pruned by retention: the signed record of that prune (entries 1 to `upTo`, older than `before`). */
  readonly pruned?: { readonly upTo: number; readonly before: number; readonly at: number };
}

/**
 * Checks an export with the log's public key alone: the header's checkpoint
 * is signed by `key`, every entry's leaf is in the tree it signed at its
 * sequence number, the sequence numbers run from `from` to `to` without a
 * gap, a repeat or a reordering, and the trailer is there and agrees. An
 * export of a log pruned by retention may carry the signed record of the
 * prune, which must end right before its first entry: the result then says
 * which entries were pruned on purpose. Calls `onEntry` with each entry that
 * checked out, in order.
 */
export function verifyExport(lines: Iterable<string>, key: VerifierKey | string, onEntry?: (entry: { readonly seq: number; readonly body: unknown; readonly links: readonly unknown[] }) => void): Verdict<VerifiedExport> {
  let header: { checkpoint: Checkpoint; from: number; to: number; pruned?: Retention } | null = null;
  let next = 0;
  let count = 0;
  let ended = false;
  let lineNo = 0;
  for (const text of lines) {
    lineNo += 1;
    if (text.trim() === "") continue;
    const where = `line ${String(lineNo)}`;
    if (ended) return refuse(`${where} follows the trailer: the export has lines appended after its end`);
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      return refuse(`${where} is not JSON`);
    }
    if (typeof line !== "object" || line === null) return refuse(`${where} is not an export line`);
    const l = line as Record<string, unknown>;
    if (header === null) {
      if (l.format !== EXPORT_FORMAT || typeof l.checkpoint !== "string") return refuse(`${where} must be the header, with format "${EXPORT_FORMAT}" and the signed checkpoint`);
      const from = l.from;
      const to = l.to;
      if (typeof from !== "number" || typeof to !== "number" || !Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 1 || to < from - 1) return refuse(`${where}: the header's range is malformed`);
      const checked = verifyCheckpoint(l.checkpoint, key);
      if (!checked.ok) return checked;
      if (to > checked.value.size) return refuse(`${where}: the range ends at ${String(to)}, beyond the ${String(checked.value.size)} entries the checkpoint signed`);
      let pruned: Retention | undefined;
      if (l.pruned !== undefined) {
        // The pruned range is only claimed with the signed record of the prune, which must end right before the export.
        const record = typeof l.pruned === "string" ? verifyCheckpoint(l.pruned, key) : refuse("pruned must be a signed retention checkpoint");
        if (!record.ok) return refuse(`${where}: the header's retention record is refused: ${record.reason}`);
        pruned = record.value.retention;
        if (pruned === undefined || pruned.upTo !== from - 1) return refuse(`${where}: the header's retention record does not end right before the export's first entry (${String(from)})`);
      }
      header = { checkpoint: checked.value, from, to, ...(pruned === undefined ? {} : { pruned }) };
      next = from;
      continue;
    }
    if (l.end === true) {
      if (l.entries !== count) return refuse(`${where}: the trailer counts ${String(l.entries)} entries, the export holds ${String(count)}`);
      if (next !== header.to + 1) return refuse(`${where}: the export ends at ${String(next - 1)}, before ${String(header.to)}: entries are missing`);
      ended = true;
      continue;
    }
    if (typeof l.seq !== "number" || typeof l.leaf !== "string") return refuse(`${where} needs a seq and a leaf`);
    if (l.seq !== next) return refuse(`${where} has seq ${String(l.seq)} where ${String(next)} was due: an entry is missing, repeated or out of order`);
    const proof = hashes(l.proof);
    if (proof === null) return refuse(`${where}: proof must be a list of 32-byte base64 hashes`);
    if (!verifyInclusion(l.seq - 1, header.checkpoint.size, leafHash(l.leaf), proof, header.checkpoint.rootHash)) {
      return refuse(`${where} (seq ${String(l.seq)}) is not the entry the checkpoint signed at that place: it was edited`);
    }
    const leaf = parseLeaf(l.leaf);
    if (!leaf.ok) return leaf;
    onEntry?.({ seq: l.seq, ...leaf.value });
    next += 1;
    count += 1;
  }
  if (header === null) return refuse("the export is empty: it has no header");
  if (!ended) return refuse(`the export has no trailer: it was cut short after seq ${String(next - 1)}`);
  const pruned = header.pruned === undefined ? {} : { pruned: { upTo: header.pruned.upTo, before: header.pruned.before, at: header.pruned.at } };
  return accept({ checkpoint: { origin: header.checkpoint.origin, size: header.checkpoint.size }, from: header.from, to: header.to, entries: count, ...pruned });
}
