import fs from "node:fs";
import path from "node:path";
import { InvalidInput, type ExecRequest, type FsRequest } from "../../kernel/index.js";
import { namesDirectory, realPathWithin } from "../fs/internal.js";

/*
 * Canonicalization of the program and the working directory of a run, in the
 * order that keeps a denied run from touching anything:
 *
 * 1. `writtenRun`: the paths as the caller wrote them, made canonical
 *    lexically (`..` and repeated separators removed), with no I/O. The
 *    capability decides on these first.
 * 2. `resolvedRun`: every symbolic link and `..` resolved, looking only where
 *    the caller's grant reaches (a name outside it is never read), so the
 *    capability then decides on what would really run, and where. Grants
 *    therefore name real paths (on a merged-/usr system, /usr/bin/echo rather
 *    than /bin/echo), and a caller names them as granted: both its words and
 *    their real path must be allowed.
 * 3. `inspectProgram` and `requireDirectory`: only a program the capability
 *    allows is opened and read, to refuse what exec would run in a way the
 *    grant did not mean.
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

const { O_RDONLY, O_NONBLOCK, O_NOFOLLOW } = fs.constants;

/** The two requests of one run: running the program, and listing its working directory. */
export interface RunRequests {
  readonly exec: ExecRequest;
  readonly list: FsRequest;
}

/** What a run asks for, before any path is canonicalized. */
export interface RunCall {
  readonly argv: readonly string[];
  readonly cwd: string;
  readonly env: readonly string[];
  readonly tenant?: string | undefined;
}

function requests(program: string, args: readonly string[], cwd: string, env: readonly string[], tenant: string | undefined): RunRequests {
  const tenanted = tenant === undefined ? {} : { tenant };
  return {
    exec: { action: "exec", argv: [program, ...args], cwd, env, ...tenanted },
    list: { action: "fs.list", path: cwd, ...tenanted },
  };
}

/**
 * The requests of `call` with the program and cwd made canonical lexically
 * (absolute paths are expected), touching nothing. Throws InvalidInput for a
 * program named like a directory (`/usr/bin/echo/`), which names no program.
 */
export function writtenRun(call: RunCall): RunRequests {
  const [named = "", ...args] = call.argv;
  if (namesDirectory(named)) {
    throw new InvalidInput(`program ${JSON.stringify(named)} ends with a separator, "." or "..": it names a directory, not a program`);
  }
  return requests(path.resolve("/", named), args, path.resolve("/", call.cwd), call.env, call.tenant);
}

/**
 * The requests of `written` on real paths: the cwd resolved looking only
 * where `refuse` lets its listing through, then the program looking only
 * where `refuse` lets its run through. Returns the first refusal instead
 * when resolving would have to look beyond that.
 */
export function resolvedRun<D extends object>(written: RunRequests, refuse: (request: ExecRequest | FsRequest) => D | null): RunRequests | D {
  const [program = "", ...args] = written.exec.argv;
  const { env = [], tenant } = written.exec;
  const cwd = realPathWithin(written.list.path, (p) => refuse(requests(program, args, p, env, tenant).list));
  if (typeof cwd !== "string") return cwd;
  const real = realPathWithin(program, (p) => refuse(requests(p, args, cwd, env, tenant).exec));
  if (typeof real !== "string") return real;
  return requests(real, args, cwd, env, tenant);
}

/**
 * Throws InvalidInput unless the real path `real` is a regular, executable,
 * non-setuid file in a format the kernel runs itself (never via /bin/sh).
 * Messages name the program as the caller did (`shown`).
 */
export function inspectProgram(real: string, shown: string): void {
  const named = JSON.stringify(shown);
  const head = new Uint8Array(4);
  let headLength: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the call; it is refused below as not a regular file.
    // O_NOFOLLOW: `real` has no links; one swapped in since is refused rather than followed.
    const fd = fs.openSync(real, O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
    try {
      const info = fs.fstatSync(fd);
      if (!info.isFile()) throw new InvalidInput(`program ${named} is not a regular file`);
      // A setuid or setgid program runs as another user: it could not be killed on timeout or revocation.
      if ((info.mode & (S_ISUID | S_ISGID)) !== 0) {
        throw new InvalidInput(`program ${named} is setuid or setgid; it cannot be confined (it could outlive a kill)`);
      }
      headLength = fs.readSync(fd, head, 0, head.length, 0);
    } finally {
      fs.closeSync(fd);
    }
    fs.accessSync(real, fs.constants.X_OK);
  } catch (e) {
    if (e instanceof InvalidInput) throw e;
    throw new InvalidInput(`program ${named} ${problem(e, "is not executable or not readable")}`);
  }
  if (!EXECUTABLE_MAGIC.some((magic) => magic.length <= headLength && magic.every((byte, i) => head[i] === byte))) {
    throw new InvalidInput(`program ${named} is neither a binary nor a #! script; exec would hand it to /bin/sh, so it is refused`);
  }
}

/** Throws InvalidInput unless the real path `real` is a directory; messages name it as the caller did (`shown`). */
export function requireDirectory(real: string, shown: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = fs.statSync(real).isDirectory();
  } catch (e) {
    throw new InvalidInput(`cwd ${JSON.stringify(shown)} ${problem(e, "cannot be resolved: permission denied")}`);
  }
  if (!isDirectory) throw new InvalidInput(`cwd ${JSON.stringify(shown)} is not a directory`);
}

function problem(error: unknown, accessDenied: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "ENOENT" ? "does not exist"
    : code === "ENOTDIR" ? "has a component that is not a directory"
    : code === "ELOOP" ? "has too many levels of symbolic links, or was replaced by one"
    : code === "EACCES" ? accessDenied
    : `cannot be checked (${code ?? String(error)})`;
}
