import fs from "node:fs";

/** At most this many descriptors are kept open, for the whole process. */
const MAX_KEPT = 32;
/** Only files this small are kept: for them opening and closing is most of a read, and a deleted one held open keeps little disk space. */
export const MAX_KEPT_BYTES = 64 * 1024;
/** A descriptor not used for this long is closed. */
export const KEPT_IDLE_MS = 2_000;

interface Kept {
  readonly fd: number;
  readonly dev: number;
  readonly ino: number;
  readonly ctimeMs: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  used: number;
}

/** Whether `st` shows the kept file unchanged: the same inode, and no change of its status (ctime), its permissions or its owner since it was kept. */
function unchanged(st: fs.Stats, k: Kept): boolean {
  // Mode and owner are compared too: a ctime may not move for a change made within the same clock tick.
  return st.dev === k.dev && st.ino === k.ino && st.ctimeMs === k.ctimeMs && st.mode === k.mode && st.uid === k.uid && st.gid === k.gid;
}

/** A kept descriptor that still proves its file, and the file's status now. */
export interface KeptFile {
  readonly fd: number;
  readonly st: fs.Stats;
}

/*
 * Read descriptors kept open after a verified read (Linux, /proc/self/fd
 * only), so that reading a small file again costs no open and no close.
 *
 * Nothing is decided from a kept descriptor alone. Each use asks the kernel
 * for the descriptor's path again (readlink of /proc/self/fd/N, the same
 * proof a fresh open is given) and takes it only when that is exactly the
 * path being read, and when fstat shows the same file with nothing changed
 * since it was opened (its ctime: permissions, owner, links and content all
 * move it). A file renamed, replaced or deleted, a directory on its way
 * moved (even linked back), a chmod: each makes the descriptor fail the
 * check, and it is closed and forgotten; the read then opens the path as it
 * would have without it.
 *
 * What is kept is bounded for the whole process (MAX_KEPT descriptors, files
 * of MAX_KEPT_BYTES at most), and a descriptor idle for KEPT_IDLE_MS is
 * closed by a timer that does not keep the process alive. Descriptors are
 * opened close-on-exec (libuv's default), so no child process inherits one.
 */
const kept = new Map<string, Kept>();
let sweeping: NodeJS.Timeout | null = null;

function close(p: string, k: Kept): void {
  kept.delete(p);
  try {
    fs.closeSync(k.fd);
  } catch {
    // Already closed by other code in the process: nothing is left to release.
  }
}

function sweep(): void {
  sweeping = null;
  const idleSince = performance.now() - KEPT_IDLE_MS;
  for (const [p, k] of kept) if (k.used <= idleSince) close(p, k);
  armSweep();
}

function armSweep(): void {
  if (sweeping !== null || kept.size === 0) return;
  sweeping = setTimeout(sweep, KEPT_IDLE_MS);
  sweeping.unref();
}

/** Whether a descriptor is kept for `p`: a hint only, which `reopen` checks. */
export function isKept(p: string): boolean {
  return kept.has(p);
}

/** The descriptor kept for the real path `p`, when the kernel still names it `p` and the file is unchanged; null otherwise (it is then closed). */
export function reopen(p: string): KeptFile | null {
  const k = kept.get(p);
  if (k === undefined) return null;
  let st: fs.Stats | null = null;
  try {
    if (fs.readlinkSync(`/proc/self/fd/${String(k.fd)}`) === p) st = fs.fstatSync(k.fd);
  } catch {
    // The descriptor is gone (closed by other code): it proves nothing.
    st = null;
  }
  if (st === null || !unchanged(st, k)) {
    close(p, k);
    return null;
  }
  k.used = performance.now();
  // Most recently used last, so the first entry is the one to close when room is needed.
  kept.delete(p);
  kept.set(p, k);
  return { fd: k.fd, st };
}

/**
 * Takes `fd`, open for reading on the regular file `st` describes and
 * verified at its real path `p`, and keeps it; true when kept (the caller
 * must then not close it), false for a file that is not kept.
 */
export function keep(p: string, fd: number, st: fs.Stats): boolean {
  if (!st.isFile() || st.size > MAX_KEPT_BYTES) return false;
  const old = kept.get(p);
  if (old !== undefined) close(p, old);
  const oldest = kept.size >= MAX_KEPT ? kept.entries().next().value : undefined;
  if (oldest !== undefined) close(oldest[0], oldest[1]);
  kept.set(p, { fd, dev: st.dev, ino: st.ino, ctimeMs: st.ctimeMs, mode: st.mode, uid: st.uid, gid: st.gid, used: performance.now() });
  armSweep();
  return true;
}

/** Closes every kept descriptor now (tests start from none; the next reads open their files again). */
export function closeKept(): void {
  for (const [p, k] of kept) close(p, k);
  if (sweeping !== null) clearTimeout(sweeping);
  sweeping = null;
}

/** How many descriptors are kept now (for tests). */
export function keptCount(): number {
  return kept.size;
}
