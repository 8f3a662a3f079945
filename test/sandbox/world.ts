import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createMint } from "../../src/kernel/mint.ts";
import type { Capability, FullReach } from "../../src/index.ts";
import { createFileSystem, type FileSystem } from "../../src/resources/fs/index.ts";
import { memorySink, type MemorySink } from "../tools/memory-sink.ts";

export const NOTES_MODULE = fileURLToPath(new URL("./fixtures/notes.ts", import.meta.url));

/** Every tool of the notes module. */
export const NOTE_TOOLS = ["read_note", "write_note", "greedy", "greet", "failing", "summarize", "narrowing", "keeper"];

/**
 * A temporary directory of notes (a.txt "alpha", b.txt "bravo",
 * secret/key "hunter2"), a confined file system over it recording into
 * `sink`, and alice's root capability: every notes tool, read and write of
 * the directory except secret/.
 */
export interface World {
  readonly dir: string;
  readonly files: FileSystem;
  readonly sink: MemorySink;
  readonly alice: Capability<FullReach>;
  at(name: string): string;
  cleanup(): void;
}

export function makeWorld(): World {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "agentcap-sandbox-")));
  fs.writeFileSync(path.join(dir, "a.txt"), "alpha");
  fs.writeFileSync(path.join(dir, "b.txt"), "bravo");
  fs.mkdirSync(path.join(dir, "secret"));
  fs.writeFileSync(path.join(dir, "secret", "key"), "hunter2");
  const sink = memorySink();
  const files = createFileSystem({ baseDir: dir, audit: sink });
  const mint = createMint({
    issuer: "sandbox-tests",
    policy: () => ({ tools: NOTE_TOOLS, fs: [{ path: path.join(dir, "a.txt"), ops: ["read", "write"], subtree: false }, { path: path.join(dir, "b.txt"), ops: ["read", "write"], subtree: false }, { path: path.join(dir, "new.txt"), ops: ["write"], subtree: false }] }),
  });
  return {
    dir,
    files,
    sink,
    alice: mint.issue({ id: "alice" }),
    at: (name) => path.join(dir, name),
    cleanup: () => {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
