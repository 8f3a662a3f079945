import fs from "node:fs";
import { UNDECODED } from "./anchor.js";

/** At most this many descriptors are kept open, for the whole process. */
const MAX_KEPT = 32;
/** Only files this small are kept: for them opening and closing is most of a read, and a deleted one held open keeps little disk space. */
export const MAX_KEPT_BYTES = 64 * 1024;
/** A descriptor is closed this long after it was opened, used or not. */
export const KEPT_MS = 2_000;

/** What the kernel adds to the name of a deleted file's descriptor. */
const DELETED = " (deleted)";

interface Kept {
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
  readonly ctimeMs: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly opened: number;
}

/*
 * Read descriptors kept open after a verified read (Linux, /proc/self/fd
 * only), so that reading a small file again costs no open and no close.
 *
 * Nothing is decided from a kept descriptor alone. Before a read is decided,
 * fstat must show the same file with nothing changed since it was opened
 * (its ctime, which permissions, owner, links, renames and content all move,
 * and its mode and owner, for a change within one clock tick), and still
 * linked; a file rewritten, replaced, renamed or deleted, or a chmod, closes
 * the descriptor, and the read resolves its path as it would have without
 * it. Then, when the read acts, the descriptor must still be the one kept
 * for the path, and the kernel must name it with exactly that path (readlink
 * of /proc/self/fd/N, the proof a fresh open is given): a directory on its
 * way moved, even linked back, or the file renamed, replaced or deleted
 * while the access was recorded is caught there, and the read opens the path
 * afresh. The kernel names a deleted file by its last path with " (deleted)"
 * added, and a name's bytes that are not UTF-8 read as U+FFFD, so a path
 * that ends so or holds U+FFFD is never kept: a name that matches is then
 * always the live file at that path, whichever descriptor it is (but for a
 * mount made over a directory on the way, which the descriptor does not see).
 *
 * What is kept is bounded for the whole process (MAX_KEPT descriptors, files
 * of MAX_KEPT_BYTES at most), and each descriptor is closed KEPT_MS after it
 * was opened, by the next read or by a timer that does not keep the process
 * alive: a change no check here sees (the permissions of a directory above
 * the file) applies within that time. Descriptors are opened close-on-exec
 * (libuv's default), so no child process inherits one.
 *
 * Other code in the process may close a kept descriptor by mistake and get
 * its number for a file of its own: a descriptor is closed here only while
 * fstat still shows the file it was kept for, so such a number is forgotten,
 * never closed. Other code that opens the very same file at the reused
 * number cannot be told apart.
 */
const kept = new Map<string, Kept>();
let sweeping: NodeJS.Timeout | null = null;

/** The status of `fd` now, or null when it is not open. */
function statusOf(fd: number): fs.Stats | null {
  try {
    return fs.fstatSync(fd);
  } catch {
    return null;
  }
}

/** Forgets `k`, kept for `p`, and closes its descriptor when the number still holds that file (`st`, fstat of it now, if already known). */
function drop(p: string, k: Kept, st: fs.Stats | null = statusOf(k.fd)): void {
  if (kept.get(p) === k) kept.delete(p);
  if (st === null || st.dev !== k.dev || st.ino !== k.ino) return;
  try {
    fs.closeSync(k.fd);
  } catch {
    // Closed meanwhile: nothing is left to release.
  }
}

function sweep(): void {
  sweeping = null;
  const openedBefore = performance.now() - KEPT_MS;
  for (const [p, k] of kept) if (k.opened <= openedBefore) drop(p, k);
  armSweep();
}

/** Sets the timer for the oldest descriptor's time (entries are in the order they were opened). */
function armSweep(): void {
  const oldest = kept.values().next().value;
  if (sweeping !== null || oldest === undefined) return;
  sweeping = setTimeout(sweep, Math.max(0, oldest.opened + KEPT_MS - performance.now()));
  sweeping.unref();
}

/** Whether `st` shows the kept file unchanged and still linked. */
function unchanged(st: fs.Stats, k: Kept): boolean {
  return st.dev === k.dev && st.ino === k.ino && st.nlink > 0 && st.ctimeMs === k.ctimeMs && st.mode === k.mode && st.uid === k.uid && st.gid === k.gid;
}

/** A kept descriptor whose file was unchanged when it was looked up, and the file's status then. */
export interface KeptFile {
  readonly fd: number;
  readonly st: fs.Stats;
}

/**
 * The descriptor kept for the real path `p` and its file's status, when the
 * file is unchanged since it was opened and its time is not up; null
 * otherwise (it is then closed). Reads no path: the read must still be
 * proved with `proved` when it acts.
 */
export function keptFile(p: string): KeptFile | null {
  const k = kept.get(p);
  if (k === undefined) return null;
  const st = statusOf(k.fd);
  if (st !== null && unchanged(st, k) && performance.now() - k.opened < KEPT_MS) return { fd: k.fd, st };
  drop(p, k, st);
  return null;
}

/**
 * Whether `fd` is still the descriptor kept for `p` and the kernel names it
 * with exactly `p`; when not, the descriptor is forgotten (closed if still
 * ours) and the read must open the path afresh.
 */
export function proved(p: string, fd: number): boolean {
  const k = kept.get(p);
  if (k?.fd !== fd) return false;
  let name: string | null;
  try {
    name = fs.readlinkSync(`/proc/self/fd/${String(fd)}`);
  } catch {
    // Not open any more: it proves nothing.
    name = null;
  }
  if (name === p) return true;
  drop(p, k);
  return false;
}

/**
 * Takes `fd`, open for reading on the regular file `st` describes and
 * verified at its real path `p`, and keeps it; true when kept (the caller
 * must then not close it), false for a file that is not kept.
 */
export function keep(p: string, fd: number, st: fs.Stats): boolean {
  if (!st.isFile() || st.size > MAX_KEPT_BYTES || p.endsWith(DELETED) || p.includes(UNDECODED)) return false;
  const old = kept.get(p);
  if (old !== undefined) drop(p, old);
  const oldest = kept.size >= MAX_KEPT ? kept.entries().next().value : undefined;
  if (oldest !== undefined) drop(oldest[0], oldest[1]);
  kept.set(p, { fd, dev: st.dev, ino: st.ino, ctimeMs: st.ctimeMs, mode: st.mode, uid: st.uid, gid: st.gid, opened: performance.now() });
  armSweep();
  return true;
}

/** Closes every kept descriptor now (tests start from none; the next reads open their files again). */
export function closeKept(): void {
  for (const [p, k] of kept) drop(p, k);
  if (sweeping !== null) clearTimeout(sweeping);
  sweeping = null;
}

/** How many descriptors are kept now (for tests). */
export function keptCount(): number {
  return kept.size;
}
