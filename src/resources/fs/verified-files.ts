import fs from "node:fs";

/** At most this many files are remembered; past it the memory starts again, as the other caches of paths do. */
const MAX_FILES = 1024;

/**
 * Regular files a file system has opened and verified at their real path
 * (see anchor.ts): for each such path, the device and inode that were there.
 *
 * Resolving a path to its real path costs a look-up of every component
 * (realpath), and a file read again and again pays it every time. When one
 * `lstat` shows the same regular file still at the same path, the path is
 * taken as its own real path without resolving it again. That is only a
 * guard before the open, never the proof: the open is still made with
 * O_NOFOLLOW and verified through the anchor, which decides on the real path
 * of what was actually opened, exactly as after a full resolution. A file
 * replaced, deleted, or turned into a link (another inode, or not a regular
 * file) is resolved again in full. The one thing the guard cannot tell is a
 * component of the path turned into a link that leads to this very inode by
 * another way (the directory moved away and linked back); then the file,
 * which was verified inside the grant, is opened (a regular file: the open
 * has no effect of its own) and the verification refuses it, as it refuses
 * a link swapped in after the resolution today.
 */
export class VerifiedFiles {
  readonly #identities = new Map<string, { readonly dev: number; readonly ino: number }>();

  /** Whether the regular file verified at `p` is still there: same device and inode, not a link. */
  stillAt(p: string): boolean {
    const known = this.#identities.get(p);
    if (known === undefined) return false;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(p, { throwIfNoEntry: false });
    } catch {
      // Unreadable on the way: resolve it in full, which reports what the system says.
      st = undefined;
    }
    if (st !== undefined && st.isFile() && st.dev === known.dev && st.ino === known.ino) return true;
    this.#identities.delete(p);
    return false;
  }

  /** Remembers the regular file `st` describes (from its open descriptor) as verified at its real path `p`. */
  remember(p: string, st: fs.Stats): void {
    if (!st.isFile()) return;
    if (this.#identities.size >= MAX_FILES && !this.#identities.has(p)) this.#identities.clear();
    this.#identities.set(p, { dev: st.dev, ino: st.ino });
  }
}
