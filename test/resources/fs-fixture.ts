import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createManualClock, createMint, type Capability, type FullReach, type ManualClock } from "../../src/index.ts";
import { detectAnchor, type Anchor } from "../../src/resources/fs/anchor.ts";
import { confinedFileSystem } from "../../src/resources/fs/confined.ts";
import { parseFileSystemOptions, type FileSystem, type FileSystemOptions } from "../../src/resources/fs/file-system.ts";

/**
 * A temporary tree for file-system tests (T is the real path of a fresh
 * temp dir; the file system's baseDir is T/base):
 *
 *   T/outside/secret.txt          "SECRET"      never reachable
 *   T/outside/e/f.txt             "SECRET-F"    target of swapped links
 *   T/base/private/p.txt          "PRIVATE"     not granted
 *   T/base/granted/               read, write, list, delete (subtree)
 *     a.txt "A", empty.txt "", sub/file.txt "SUB", empty-dir/, d/e/f.txt "F"
 *     out-link -> T/outside           secret-link -> T/outside/secret.txt
 *     rel-link -> ../../outside/secret.txt
 *     dangling-out -> T/outside/new.txt    dangling-dir -> T/outside/nodir
 *     dangling-in -> created-through-link.txt
 *     loop-a -> loop-b, loop-b -> loop-a   up -> ..    in-link -> sub/file.txt
 *   T/base/granted-evil/x.txt     "EVIL"        shares a prefix with granted
 *   T/base/ro/r.txt               "RO"          read, list
 *   T/base/single.txt "SINGLE"                  read, this file only
 *   T/base/single.txt.bak "BAK"
 */
export interface Fixture {
  readonly root: string;
  readonly base: string;
  readonly granted: string;
  readonly outside: string;
  readonly clock: ManualClock;
  /** Root capability with the grant above. */
  readonly cap: Capability<FullReach>;
  readonly fsys: FileSystem;
  /** Absolute path of a name under T. */
  at(relative: string): string;
  cleanup(): void;
}

export const SECRET_CONTENTS = ["SECRET", "SECRET-F", "PRIVATE", "EVIL", "BAK"];

/** Builds the tree and a file system over it, verifying opens with `anchor` (default: the platform's strongest). */
export function makeFixture(anchor?: Anchor, limits: Omit<FileSystemOptions, "baseDir"> = {}): Fixture {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "agentcap-fs-")));
  const at = (relative: string) => path.join(root, relative);
  const file = (relative: string, content: string) => {
    fs.mkdirSync(path.dirname(at(relative)), { recursive: true });
    fs.writeFileSync(at(relative), content);
  };
  const link = (relative: string, target: string) => {
    fs.symlinkSync(target, at(relative));
  };
  file("outside/secret.txt", "SECRET");
  file("outside/e/f.txt", "SECRET-F");
  file("base/private/p.txt", "PRIVATE");
  file("base/granted/a.txt", "A");
  file("base/granted/empty.txt", "");
  file("base/granted/sub/file.txt", "SUB");
  file("base/granted/d/e/f.txt", "F");
  fs.mkdirSync(at("base/granted/empty-dir"));
  link("base/granted/out-link", at("outside"));
  link("base/granted/secret-link", at("outside/secret.txt"));
  link("base/granted/rel-link", "../../outside/secret.txt");
  link("base/granted/dangling-out", at("outside/new.txt"));
  link("base/granted/dangling-dir", at("outside/nodir"));
  link("base/granted/dangling-in", "created-through-link.txt");
  link("base/granted/loop-a", "loop-b");
  link("base/granted/loop-b", "loop-a");
  link("base/granted/up", "..");
  link("base/granted/in-link", "sub/file.txt");
  file("base/granted-evil/x.txt", "EVIL");
  file("base/ro/r.txt", "RO");
  file("base/single.txt", "SINGLE");
  file("base/single.txt.bak", "BAK");

  const base = at("base");
  const granted = at("base/granted");
  const clock = createManualClock(1_000_000);
  const mint = createMint({
    issuer: "fs-tests",
    clock,
    policy: () => ({
      fs: [
        { path: granted, ops: ["read", "write", "list", "delete"] },
        { path: at("base/ro"), ops: ["read", "list"] },
        { path: at("base/single.txt"), ops: ["read"], subtree: false },
      ],
    }),
  });
  const settings = parseFileSystemOptions({ baseDir: base, ...limits });
  const fsys = confinedFileSystem(settings, anchor ?? detectAnchor(settings.baseDir));
  return {
    root,
    base,
    granted,
    outside: at("outside"),
    clock,
    cap: mint.issue({ id: "tester" }),
    fsys,
    at,
    cleanup: () => {
      fs.rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Every entry under `dir`: files by content, links by target, directories as such. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of fs.readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      if (st.isSymbolicLink()) out[p] = `link:${fs.readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[p] = "dir";
        walk(p);
      } else out[p] = `file:${fs.readFileSync(p, "utf8")}`;
    }
  };
  walk(dir);
  return out;
}
