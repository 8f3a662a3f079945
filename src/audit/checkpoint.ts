import { createPrivateKey, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { mkdirSync } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { AuditFailure, InvalidInput } from "../kernel/index.js";
import { KEY_NAME, keyIdOf, parseVerifierKey, verifyCheckpoint, type Checkpoint } from "./proof-verifier.js";

/*
 * Signed checkpoints of the log's head, kept outside the database: a C2SP
 * checkpoint (origin, tree size, base64 root hash) in a C2SP signed note,
 * signed with an Ed25519 key the database never sees. A checkpoint file is
 * the notes one after another, each followed by a blank line.
 */

/** A signing key in the signed-note form `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || 32-byte seed)>`, and its verifier key. */
export interface CheckpointKeyPair {
  readonly signerKey: string;
  readonly verifierKey: string;
}

/** A parsed signing key. */
export interface CheckpointSigner {
  readonly name: string;
  readonly keyId: Buffer;
  readonly key: KeyObject;
  readonly verifierKey: string;
}

/** Where checkpoints go, and where verification reads them from. */
export interface CheckpointSink {
  /** Appends one signed note; resolves once it is stored. */
  append(note: string): Promise<void>;
  /** Every note stored so far, oldest first. */
  read(): Promise<string[]>;
}

/** Names a key is made with are short enough to read in a note's signature line. */
const MAX_KEY_NAME = 128;

function verifierKeyOf(name: string, publicKey: Buffer): string {
  return `${name}+${keyIdOf(name, publicKey).toString("hex")}+${Buffer.concat([Buffer.of(1), publicKey]).toString("base64")}`;
}

/** A new Ed25519 key for signing the checkpoints of the log named `name` (its origin, such as `example.com/agentcap-audit`). */
export function generateCheckpointKey(name: string): CheckpointKeyPair {
  if (!KEY_NAME.test(name) || name.length > MAX_KEY_NAME) {
    throw new InvalidInput(`a checkpoint key name has 1 to ${MAX_KEY_NAME} characters, with no spaces, '+' or control characters (such as example.com/agentcap-audit)`);
  }
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d ?? "", "base64url");
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x ?? "", "base64url");
  const id = keyIdOf(name, pub).toString("hex");
  return { signerKey: `PRIVATE+KEY+${name}+${id}+${Buffer.concat([Buffer.of(1), seed]).toString("base64")}`, verifierKey: verifierKeyOf(name, pub) };
}

/** Parses a signing key; InvalidInput says what is wrong (never the key). */
export function parseSignerKey(text: string): CheckpointSigner {
  // The base64 key, last, may itself hold '+'; the name and id never do.
  const parts = /^([^+]*)\+([^+]*)\+([^+]*)\+([^+]*)\+(.*)$/s.exec(text.trim());
  const [, p, k, name = "", hex = "", b64 = ""] = parts ?? [];
  if (parts === null || p !== "PRIVATE" || k !== "KEY" || !KEY_NAME.test(name)) {
    throw new InvalidInput("a checkpoint signing key has the form PRIVATE+KEY+<name>+<key id>+<base64 key>, as agentcap audit keygen writes it");
  }
  const raw = Buffer.from(b64, "base64");
  if (raw.length !== 33 || raw[0] !== 1) throw new InvalidInput("the checkpoint signing key is not an Ed25519 key (0x01 followed by a 32-byte seed)");
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), raw.subarray(1)]), format: "der", type: "pkcs8" });
  } catch {
    throw new InvalidInput("the checkpoint signing key is not a valid Ed25519 key");
  }
  const pub = Buffer.from(key.export({ format: "jwk" }).x ?? "", "base64url");
  const keyId = keyIdOf(name, pub);
  if (keyId.toString("hex") !== hex) throw new InvalidInput("the checkpoint signing key's id does not match its name and key");
  return { name, keyId, key, verifierKey: verifierKeyOf(name, pub) };
}

/** A checkpoint of the tree of `size` entries with root `root`, signed as a note by `signer`; `extensions` are extra lines of its text (C2SP allows them after the root). */
export function signCheckpoint(signer: CheckpointSigner, origin: string, size: number, root: Buffer, extensions: readonly string[] = []): string {
  const text = `${origin}\n${String(size)}\n${root.toString("base64")}\n${extensions.map((l) => `${l}\n`).join("")}`;
  const signature = sign(null, Buffer.from(text, "utf8"), signer.key);
  return `${text}\n\u2014 ${signer.name} ${Buffer.concat([signer.keyId, signature]).toString("base64")}\n`;
}

/** Splits a checkpoint file into its notes: each is text lines, a blank line, signature lines, then a blank line. */
export function splitNotes(file: string): string[] {
  const notes: string[] = [];
  const chunks = file.split("\n\n");
  for (let i = 0; i + 1 < chunks.length; i += 2) {
    const text = chunks[i] as string;
    const signatures = chunks[i + 1] as string;
    if (text.trim() === "") break;
    notes.push(`${text}\n\n${signatures}\n`);
  }
  return notes;
}

/** A checkpoint sink that appends to a file (created with its directory), syncing each note to disk. */
export function fileCheckpointSink(path: string): CheckpointSink {
  return Object.freeze({
    append: async (note: string) => {
      mkdirSync(dirname(path), { recursive: true });
      const handle = await open(path, "a", 0o644);
      try {
        await handle.appendFile(`${note}\n`);
        await handle.datasync();
      } finally {
        await handle.close();
      }
    },
    read: async () => {
      try {
        return splitNotes(await readFile(path, "utf8"));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
      }
    },
  });
}

/** A checkpoint sink held in memory, for tests and for callers that ship notes elsewhere themselves. */
export function memoryCheckpointSink(): CheckpointSink & { readonly notes: string[] } {
  const notes: string[] = [];
  return Object.freeze({
    notes,
    append: (note: string) => {
      notes.push(note);
      return Promise.resolve();
    },
    read: () => Promise.resolve([...notes]),
  });
}


/** The verified checkpoints among `notes`, sorted by tree size, and the notes refused with why. */
export function verifiedCheckpoints(notes: readonly string[], verifierKey: string): { readonly good: Checkpoint[]; readonly bad: { readonly note: string; readonly why: string }[] } {
  const key = parseVerifierKey(verifierKey);
  if (!key.ok) throw new InvalidInput(`checkpoint verifier key: ${key.reason}`);
  const good: Checkpoint[] = [];
  const bad: { note: string; why: string }[] = [];
  for (const note of notes) {
    const verdict = verifyCheckpoint(note, key.value);
    if (verdict.ok) good.push(verdict.value);
    else bad.push({ note, why: verdict.reason });
  }
  good.sort((a, b) => a.size - b.size);
  return { good, bad };
}

/** When to write a checkpoint. */
export interface CheckpointSchedule {
  /** After this many new entries (default 1000). */
  readonly everyEntries: number;
  /** After this many milliseconds with new entries (default 10,000). */
  readonly everyMs: number;
}

/**
 * Writes checkpoints as the log grows: after `everyEntries` new entries, or
 * `everyMs` after the first entry not yet covered, and when the store
 * closes. Writing is serialized and never holds up an append; a failure to
 * write one is reported through `onError` and retried with the next.
 */
export class Checkpointer {
  readonly #signer: CheckpointSigner;
  readonly #origin: string;
  readonly #sink: CheckpointSink;
  readonly #schedule: CheckpointSchedule;
  readonly #onError: (error: AuditFailure) => void;
  #signed = 0;
  #latest: { size: number; root: Buffer } | null = null;
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> = Promise.resolve();

  constructor(signer: CheckpointSigner, origin: string, sink: CheckpointSink, schedule: CheckpointSchedule, onError: (error: AuditFailure) => void) {
    this.#signer = signer;
    this.#origin = origin;
    this.#sink = sink;
    this.#schedule = schedule;
    this.#onError = onError;
  }

  /** The log now has `size` entries with root `root`. */
  grew(size: number, root: Buffer): void {
    if (this.#latest !== null && size <= this.#latest.size) return;
    this.#latest = { size, root };
    if (size - this.#signed >= this.#schedule.everyEntries) this.#write();
    else if (this.#timer === null) {
      // A pending checkpoint does not keep the process alive: closing the store writes it.
      this.#timer = setTimeout(() => {
        this.#write();
      }, this.#schedule.everyMs).unref();
    }
  }

  /** Signs and writes a checkpoint of the latest head if it is not covered yet; resolves once written. */
  flush(): Promise<void> {
    this.#write();
    return this.#writing;
  }

  #write(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const latest = this.#latest;
    if (latest === null || latest.size <= this.#signed) return;
    this.#signed = latest.size;
    const note = signCheckpoint(this.#signer, this.#origin, latest.size, latest.root);
    this.#writing = this.#writing.then(
      () => this.#sink.append(note),
    ).catch((e: unknown) => {
      this.#signed = 0;
      this.#onError(new AuditFailure(`could not write the checkpoint of ${String(latest.size)} audit entries: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
    });
  }
}
