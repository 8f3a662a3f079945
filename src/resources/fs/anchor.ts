import fs from "node:fs";
import path from "node:path";

/*
 * The defence against a path being changed between the check and the use
 * (TOCTOU): another process swaps a directory on the authorized path for a
 * symbolic link to somewhere else after we resolved it.
 *
 * Every operation first opens something, then verifies what it opened, then
 * acts only through what it opened:
 *
 * - read and list open the target itself (O_NOFOLLOW, so a link swapped in as
 *   the last name fails with ELOOP; O_NONBLOCK, so a FIFO cannot stall us)
 *   and ask for the real path of the open descriptor;
 * - write, append, mkdir, delete and stat open the parent directory, verify
 *   it, and then act on the name inside that open directory. Opening the
 *   file itself first would not do for them: an O_CREAT or O_TRUNC open, a
 *   mkdir or an unlink has already had its effect by the time anything could
 *   be verified.
 *
 * The caller then authorizes the verified real path, so a swapped link that
 * leads outside the grant is denied before a byte is read or written. A read
 * of a small file read before may use the descriptor its last read kept open
 * instead of opening the path (kept-files.ts): the same readlink proves it.
 *
 * On Linux (`procFdAnchor`) this is exact. readlink of /proc/self/fd/N is the
 * kernel's own name for the open file, whatever happens to the path later;
 * and a path through /proc/self/fd/N/name is resolved from the open
 * directory itself (the kernel jumps to it, it does not look the directory
 * up by name again), so it works like openat(2), which Node lacks. No race
 * is left between verification and use.
 *
 * Elsewhere (`identityAnchor`, also used on Linux when /proc is not mounted)
 * there is no portable way to ask for an open file's path, so verification
 * checks that the authorized path still resolves to itself and names the
 * same inode (device and inode numbers) as the open descriptor, and entries
 * are then reached by name. That catches every swap made before the
 * verification; one made between the verification and the use still gets
 * through. It narrows the window, it cannot close it.
 */

/** How operations verify what they opened and reach names inside an opened directory. */
export interface Anchor {
  /** Which defence this is, for diagnostics. */
  readonly kind: "proc-fd" | "identity";
  /** The real path of the open `fd`, which was opened as `openedAs`; null when it cannot be established. */
  realPathOf(fd: number, openedAs: string): string | null;
  /** A path that reaches `name` inside the open directory `dirFd` (opened as `dirPath`). */
  entry(dirFd: number, dirPath: string, name: string): string;
  /** A path that reaches the open directory `fd` itself (opened as `openedAs`). */
  self(fd: number, openedAs: string): string;
}

/** What a byte that is not UTF-8 reads as in a name, so that two different names can read alike. */
export const UNDECODED = "\uFFFD";

/**
 * `name`, as a path read back from the system, when it is `expected` or
 * holds only bytes that read faithfully; for a name holding U+FFFD, `bytes`
 * (the same name unread) must equal `expected`'s, else null: a name whose
 * bytes are not UTF-8 cannot be told from `expected`, nor named.
 */
function faithful(name: string, expected: string, bytes: () => Buffer): string | null {
  if (!name.includes(UNDECODED)) return name;
  return bytes().equals(Buffer.from(expected)) ? expected : null;
}

/** Exact, race-free verification through /proc/self/fd (Linux). */
export const procFdAnchor: Anchor = Object.freeze({
  kind: "proc-fd",
  realPathOf: (fd: number, openedAs: string) => {
    const link = `/proc/self/fd/${fd}`;
    return faithful(fs.readlinkSync(link), openedAs, () => fs.readlinkSync(link, { encoding: "buffer" }));
  },
  entry: (dirFd: number, _dirPath: string, name: string) => `/proc/self/fd/${dirFd}/${name}`,
  self: (fd: number) => `/proc/self/fd/${fd}`,
});

function sameInode(a: fs.Stats, b: fs.Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** Portable verification by real path and inode identity; narrows the race window but cannot close it. */
export const identityAnchor: Anchor = Object.freeze({
  kind: "identity",
  realPathOf: (fd: number, openedAs: string) => {
    const opened = fs.fstatSync(fd);
    try {
      if (faithful(fs.realpathSync.native(openedAs), openedAs, () => fs.realpathSync.native(openedAs, { encoding: "buffer" })) !== openedAs) return null;
      return sameInode(opened, fs.statSync(openedAs)) ? openedAs : null;
    } catch {
      // The path no longer resolves: it cannot be shown to name what was opened.
      return null;
    }
  },
  entry: (_dirFd: number, dirPath: string, name: string) => path.join(dirPath, name),
  self: (_fd: number, openedAs: string) => openedAs,
});

/**
 * The strongest anchor this process supports: `procFdAnchor` when
 * /proc/self/fd reports the real path of an open directory (probed on
 * `dir`, a real path), `identityAnchor` otherwise.
 */
export function detectAnchor(dir: string): Anchor {
  if (process.platform !== "linux") return identityAnchor;
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    return procFdAnchor.realPathOf(fd, dir) === dir ? procFdAnchor : identityAnchor;
  } catch {
    // No usable /proc (a minimal container, a chroot): fall back to the portable check.
    return identityAnchor;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
