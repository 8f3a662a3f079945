import { accessSync, closeSync, constants, fstatSync, openSync, readSync, realpathSync, statSync } from "node:fs";
import { InvalidInput } from "../../kernel/index.js";

/*
 * Canonicalization of the program and the working directory, done before the
 * capability is asked: every symlink and `..` resolved by the operating
 * system's realpath (not Node's JavaScript emulation of it), so a grant is always judged against what would really run and
 * where. Grants therefore name real paths (on a merged-/usr system,
 * /usr/bin/echo rather than /bin/echo).
 *
 * The look-ups are synchronous on purpose: each is a metadata call of a few
 * microseconds, while a round trip through libuv's thread pool costs tens of
 * them, and the spawn that follows blocks the event loop for longer anyway.
 *
 * Residual window: the real path is what gets executed, so replacing the
 * program between this check and exec needs write access to the program's
 * own directory (typically /usr/bin), not merely to a symlink on the way.
 */

// Formats the kernel executes directly. Anything else is refused because the
// C library's exec falls back to running such a file with /bin/sh (ENOEXEC),
// which would be a shell the grant never named. This catches a grant that
// names a data file by mistake; it is no defence against a hostile file (one
// that starts like a binary but is not one still reaches /bin/sh, and a #!
// script runs its interpreter by design). A program path that the confined
// party can write to is therefore as good as a shell: grant only paths it cannot.
const EXECUTABLE_MAGIC: readonly (readonly number[])[] = [
  [0x7f, 0x45, 0x4c, 0x46], // ELF
  [0x23, 0x21], // "#!": a script naming its interpreter
  [0xcf, 0xfa, 0xed, 0xfe], // Mach-O 64-bit (macOS)
  [0xce, 0xfa, 0xed, 0xfe], // Mach-O 32-bit
  [0xca, 0xfe, 0xba, 0xbe], // Mach-O universal
];

// Mode bits of a program that runs as its owner or group (not in Node's typed fs.constants).
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

function unresolvable(what: string, path: string, error: unknown): InvalidInput {
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === "ENOENT" ? "does not exist"
    : code === "ENOTDIR" ? "has a component that is not a directory"
    : code === "ELOOP" ? "has too many levels of symbolic links"
    : code === "EACCES" ? "cannot be resolved: permission denied"
    : `cannot be resolved (${code ?? String(error)})`;
  return new InvalidInput(`${what} ${JSON.stringify(path)} ${why}`);
}

function resolve(what: string, path: string): string {
  try {
    return realpathSync.native(path);
  } catch (e) {
    throw unresolvable(what, path, e);
  }
}

/**
 * The real absolute path of `path`, guaranteed to be a regular, executable,
 * non-setuid file in a format the kernel runs itself (never via /bin/sh).
 * Throws InvalidInput saying which of these failed.
 */
export function resolveProgram(path: string): string {
  const real = resolve("program", path);
  const named = real === path ? JSON.stringify(path) : `${JSON.stringify(path)} (really ${real})`;
  const head = new Uint8Array(4);
  let headLength: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the call; it is refused below as not a regular file.
    const fd = openSync(real, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const info = fstatSync(fd);
      if (!info.isFile()) throw new InvalidInput(`program ${named} is not a regular file`);
      // A setuid or setgid program runs as another user: it could not be killed on timeout or revocation.
      if ((info.mode & (S_ISUID | S_ISGID)) !== 0) {
        throw new InvalidInput(`program ${named} is setuid or setgid; it cannot be confined (it could outlive a kill)`);
      }
      headLength = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
    accessSync(real, constants.X_OK);
  } catch (e) {
    if (e instanceof InvalidInput) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InvalidInput(`program ${named} ${code === "EACCES" ? "is not executable or not readable" : `cannot be checked (${code ?? String(e)})`}`);
  }
  if (!EXECUTABLE_MAGIC.some((magic) => magic.length <= headLength && magic.every((byte, i) => head[i] === byte))) {
    throw new InvalidInput(`program ${named} is neither a binary nor a #! script; exec would hand it to /bin/sh, so it is refused`);
  }
  return real;
}

/** The real absolute path of `path`, guaranteed to be a directory. Throws InvalidInput otherwise. */
export function resolveDirectory(path: string): string {
  const real = resolve("cwd", path);
  let isDirectory: boolean;
  try {
    isDirectory = statSync(real).isDirectory();
  } catch (e) {
    throw unresolvable("cwd", path, e);
  }
  if (!isDirectory) throw new InvalidInput(`cwd ${JSON.stringify(path)} is not a directory`);
  return real;
}
