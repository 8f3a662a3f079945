import fs from "node:fs";
import path from "node:path";
import {
  authorize,
  check,
  denialError,
  InvalidInput,
  LimitExceeded,
  type AuditSink,
  type Capability,
  type Denied,
  type FsRequest,
} from "../../kernel/index.js";
import { checkTrusted, type TrustedMints } from "../../kernel/internal.js";
import { audited, jsonBytes, type Access } from "../audited.js";
import { inCallersWords } from "../denials.js";
import type { Anchor } from "./anchor.js";
import { asFileSystemError, fileSystemError } from "./errors.js";
import { keep, keptFile, proved, type KeptFile } from "./kept-files.js";
import { lexicalPath, namesDirectory, realEntryPathWithin, realPathWithin } from "./paths.js";
import { VerifiedFiles } from "./verified-files.js";
import type { DirEntry, EntryType, FileInfo, FileSystem, FsSettings } from "./file-system.js";

const { O_RDONLY, O_WRONLY, O_CREAT, O_TRUNC, O_APPEND, O_NOFOLLOW, O_DIRECTORY, O_NONBLOCK } = fs.constants;
// O_NOFOLLOW: a link swapped in as the last name fails with ELOOP instead of being followed.
// O_NONBLOCK: a FIFO put in a file's place cannot stall the process on open.
const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK;
const WRITE_FLAGS = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK;

type Action = FsRequest["action"];

/** Reads one option as an own property, so a polluted Object.prototype cannot supply it. */
function option(options: unknown, key: string): unknown {
  if (options === undefined) return undefined;
  if (typeof options !== "object" || options === null) {
    throw new InvalidInput(`options must be an object such as { tenant: "acme" }, got ${options === null ? "null" : typeof options}`);
  }
  return Object.hasOwn(options, key) ? (options as Record<string, unknown>)[key] : undefined;
}

function tenantOf(options: unknown): string | undefined {
  const tenant = option(options, "tenant");
  if (tenant !== undefined && typeof tenant !== "string") throw new InvalidInput(`options.tenant must be a string, got ${typeof tenant}`);
  return tenant;
}

function request(action: Action, p: string, tenant: string | undefined): FsRequest {
  return tenant === undefined ? { action, path: p } : { action, path: p, tenant };
}

/**
 * One authorized request and how the caller named it. `req.path` is the real
 * path acted on; `shown` is the caller's path made absolute lexically, the
 * only path any error names; `slash` is "/" when the caller's path named a
 * directory by its form (`a.txt/`), and is passed on to the system call so
 * the operating system answers as it would for that path.
 */
interface Target {
  readonly req: FsRequest;
  readonly shown: string;
  readonly slash: "" | "/";
  /**
   * A descriptor kept for the caller's path (see kept-files.ts), whose file
   * was unchanged when the path was decided: the path was taken as its own
   * real path on its word, and nothing has looked at the path. The read must
   * prove it through the descriptor when it acts, or else look at the path
   * before it opens anything.
   */
  readonly kept: KeptFile | null;
}

/** What lets a read of a file read before skip resolving its path: the files verified at their path, and whether descriptors are kept. */
interface ReadShortcuts {
  readonly files: VerifiedFiles;
  /** Descriptors are kept only where the anchor proves an open file's path (see kept-files.ts). */
  readonly keeping: boolean;
}

/**
 * Records `decision` on `req` (what was decided on, for the audit) and
 * throws its typed error, told in the caller's words: `shown` instead of the
 * resolved path.
 */
function deny(access: Access, req: FsRequest, decision: Denied, shown: string): never {
  access.decided(req, decision);
  throw denialError(inCallersWords(decision, req.path, shown));
}

/**
 * Decides the path as the caller wrote it first, so a denied path is never
 * looked at; then resolves it without following a link out of what the
 * capability allows. Nothing is charged: `charge` authorizes the real path.
 * Every denial names the caller's path, never what it resolved to.
 */
function resolvedTarget(
  access: Access,
  cap: Capability,
  trusted: TrustedMints,
  action: Action,
  input: unknown,
  options: unknown,
  baseDir: string,
  entry: boolean,
  verified: ReadShortcuts | null,
): Target {
  const tenant = tenantOf(options);
  const shown = lexicalPath(input, baseDir);
  const slash = namesDirectory(input as string) ? "/" : "";
  const asked = request(action, shown, tenant);
  // The first decision of every call, so a root from a mint this file system does not trust is denied before anything is looked at.
  const first = checkTrusted(trusted, cap, asked);
  if (!first.allowed) deny(access, asked, first, shown);
  if (verified !== null && slash === "") {
    // A file whose descriptor is kept and unchanged is proved through that descriptor when it is read.
    const kept = verified.keeping ? keptFile(shown) : null;
    if (kept !== null) return { req: asked, shown, slash, kept };
    // A regular file verified at this very path before, and still there, is its own real path (see VerifiedFiles).
    if (verified.files.stillAt(shown)) return { req: asked, shown, slash, kept: null };
  }
  return { req: request(action, realWithin(access, cap, action, shown, tenant, entry), tenant), shown, slash, kept: null };
}

/**
 * The real path of `shown` (its last name kept as written for an `entry`),
 * resolved without following a link out of what the capability allows:
 * every denial names the caller's path.
 */
function realWithin(access: Access, cap: Capability, action: Action, shown: string, tenant: string | undefined, entry: boolean): string {
  const refuse = (p: string) => {
    const req = request(action, p, tenant);
    const decision = check(cap, req);
    return decision.allowed ? null : { req, decision };
  };
  const real = entry ? realEntryPathWithin(shown, refuse) : realPathWithin(shown, refuse);
  if (typeof real !== "string") deny(access, real.req, real.decision, shown);
  return real;
}

/**
 * `t` resolved to its real path now and decided (nothing charged: the call
 * was charged for the path it was taken to be), for a read taken on a kept
 * descriptor's word that no longer holds. Throws the denial in the caller's words.
 */
function resolvedNow(access: Access, cap: Capability, t: Target): Target {
  // Its last name as written, as the open that follows refuses a link (O_NOFOLLOW): a link swapped in while the access was recorded is refused as a fresh read refuses it.
  const real = realWithin(access, cap, t.req.action, t.shown, t.req.tenant, true);
  if (real === t.req.path) return { ...t, kept: null };
  const req = { ...t.req, path: real };
  const decision = check(cap, req);
  if (!decision.allowed) deny(access, req, decision, t.shown);
  access.decided(req, decision);
  return { req, shown: t.shown, slash: t.slash, kept: null };
}

/** Authorizes and charges the real path of `t`, recording the decision; throws the typed denial in the caller's words. */
function charge(access: Access, cap: Capability, t: Target): void {
  const decision = authorize(cap, t.req);
  if (!decision.allowed) deny(access, t.req, decision, t.shown);
  access.decided(t.req, decision);
}

/**
 * How the caller would name `p`, a real path on the way to `t`'s (a parent
 * that mkdir creates): the caller's path cut by as many trailing names as
 * `p` lacks, when the two end alike; otherwise the caller's path itself.
 */
function shownAt(t: Target, p: string): string {
  const rest = t.req.path.slice(p.length);
  return t.shown.endsWith(rest) ? t.shown.slice(0, t.shown.length - rest.length) : t.shown;
}

/**
 * Throws unless `real`, the real path of what was actually opened, may be
 * acted on. It is normally `req.path` itself; when another process has
 * swapped a component of the path since it was resolved, it is whatever the
 * swap led to, and the capability decides on that. Null means the anchor
 * could not establish it, which is refused.
 */
function verify(access: Access, cap: Capability, target: Target, real: string | null): void {
  const { req, shown } = target;
  if (real === req.path) return;
  if (real === null || !real.startsWith("/")) {
    const refused: Denied = {
      allowed: false,
      code: "ERR_CAPABILITY_DENIED",
      reason: `${shown} changed between the check and the open (a component was replaced, perhaps by a symbolic link); the ${req.action} request was refused`,
      because: `found ${shown} changed between the check and the open`,
      capabilityId: cap.id,
      link: cap.depth,
      linkId: cap.id,
      rule: "fs.verify",
    };
    deny(access, req, refused, shown);
  }
  const opened = { ...req, path: real };
  const decision = check(cap, opened);
  if (!decision.allowed) deny(access, opened, decision, shown);
  access.decided(opened, decision);
}

function withOpen<T>(p: string, flags: number, use: (fd: number) => T): T {
  const fd = fs.openSync(p, flags);
  try {
    return use(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Runs the I/O of one authorized request, reporting OS errors against the canonical path. */
function io<T>(verb: string, p: string, act: () => T): T {
  try {
    return act();
  } catch (error) {
    throw asFileSystemError(verb, p, error);
  }
}

function typeOf(st: fs.Stats | fs.Dirent): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  return "other";
}

function requireRegularFile(st: fs.Stats, verb: string, p: string): void {
  if (!st.isFile()) throw fileSystemError(verb, p, st.isDirectory() ? "EISDIR" : "EFTYPE");
}

/** Refuses a regular file with a second name, which may lie outside the grant, when the file system refuses hard links. */
function refuseLinked(refuse: boolean, st: fs.Stats, verb: string, p: string): void {
  if (refuse && st.isFile() && st.nlink > 1) throw fileSystemError(verb, p, "EMLINK");
}

/** Where a read through a kept descriptor puts the byte past the size it expects, to see that the file grew; shared, and never returned. */
const BEYOND_END = Buffer.alloc(1);

function readAll(fd: number, size: number): Buffer {
  // Unpooled, so the caller's Buffer shares no memory with anything else; every byte returned was read.
  const buf = Buffer.allocUnsafeSlow(size);
  let done = 0;
  while (done < size) {
    // At explicit offsets: a kept descriptor is read again from its start.
    const n = fs.readSync(fd, buf, done, size - done, done);
    if (n === 0) break;
    done += n;
  }
  // The file shrank after fstat: only what was read is returned.
  return done === size ? buf : firstBytes(buf, done);
}

/** The first `n` bytes of `buf` in memory of their own, unpooled: never the uninitialized rest of `buf`. */
function firstBytes(buf: Buffer, n: number): Buffer {
  const out = Buffer.allocUnsafeSlow(n);
  buf.copy(out, 0, 0, n);
  return out;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done);
}

function exists(p: string): boolean {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
  } catch {
    // ENOTDIR, EACCES: something is there, and creating below it will report the real error.
    return true;
  }
}

/** `target` and its missing ancestors, outermost first; just `target` when it exists. */
function missingLevels(target: string): string[] {
  const levels = [target];
  for (let p = path.dirname(target); p !== path.dirname(p) && !exists(p); p = path.dirname(p)) levels.unshift(p);
  return levels;
}

/**
 * Builds the confined file system over validated settings, verifying opened
 * files with `anchor`. `createFileSystem` is the public way in; this one lets
 * tests choose the anchor.
 */
export function confinedFileSystem(settings: FsSettings, anchor: Anchor, sink?: AuditSink, trusted: TrustedMints = null): FileSystem {
  const { baseDir, maxReadBytes, maxWriteBytes, maxListEntries, refuseHardLinks } = settings;
  // Refusing hard links, a write cannot truncate at open (O_TRUNC acts before the link count can be read): it truncates the checked descriptor.
  const replaceFlags = refuseHardLinks ? 0 : O_TRUNC;
  /** Files read and verified at their real path, which a later read of the same path need not resolve again. */
  const shortcuts: ReadShortcuts = { files: new VerifiedFiles(), keeping: anchor.kind === "proc-fd" };

  /** Opens the parent directory of `t.req.path`, verifies it, and acts on the last name inside that open directory. */
  const inParent = <T>(access: Access, cap: Capability, t: Target, verb: string, act: (entry: string) => T): T => {
    const { req } = t;
    const dir = path.dirname(req.path);
    if (dir === req.path) throw fileSystemError(verb, t.shown, "EPERM");
    const name = path.basename(req.path);
    return withOpen(dir, DIR_FLAGS, (dirFd) => {
      const realDir = anchor.realPathOf(dirFd, dir);
      verify(access, cap, t, realDir === null ? null : path.join(realDir, name));
      return act(anchor.entry(dirFd, dir, name));
    });
  };

  const bytesOf = (data: unknown, verb: string): Uint8Array => {
    let bytes: Uint8Array;
    if (typeof data === "string") {
      const length = Buffer.byteLength(data, "utf8");
      if (length > maxWriteBytes) throw tooLarge(verb, length);
      bytes = Buffer.from(data, "utf8");
    } else if (data instanceof Uint8Array) {
      bytes = data;
    } else {
      throw new InvalidInput(`data to ${verb} must be a string or a Uint8Array, got ${data === null ? "null" : typeof data}`);
    }
    if (bytes.byteLength > maxWriteBytes) throw tooLarge(verb, bytes.byteLength);
    return bytes;
  };

  const tooLarge = (verb: string, length: number) =>
    new LimitExceeded(`cannot ${verb} ${length} bytes: one call may write at most maxWriteBytes (${maxWriteBytes}) bytes`, "maxWriteBytes");

  /** Validates the call, decides the path as written, resolves it, then authorizes (and charges) its real path. */
  const target = (access: Access, cap: Capability, action: Action, input: unknown, options: unknown, entry = false, known: ReadShortcuts | null = null): Target => {
    const t = resolvedTarget(access, cap, trusted, action, input, options, baseDir, entry, known);
    charge(access, cap, t);
    return t;
  };

  /** Runs one method's access through the audit; methods that return nothing report 0 bytes. */
  const run = <T>(cap: Capability, act: (access: Access) => Promise<T>, size: (result: T) => number | null = () => 0): Promise<T> => audited(sink, cap, act, size);

  const put = async (access: Access, cap: Capability, input: unknown, data: unknown, options: unknown, append: boolean): Promise<void> => {
    const verb = append ? "append to" : "write";
    const bytes = bytesOf(data, verb);
    const t = target(access, cap, "fs.write", input, options);
    await access.proceed();
    io(verb, t.shown, () => {
      inParent(access, cap, t, verb, (entry) => {
        withOpen(entry + t.slash, WRITE_FLAGS | (append ? O_APPEND : replaceFlags), (fd) => {
          const st = fs.fstatSync(fd);
          requireRegularFile(st, verb, t.shown);
          refuseLinked(refuseHardLinks, st, verb, t.shown);
          if (!append && replaceFlags === 0) fs.ftruncateSync(fd, 0);
          writeAll(fd, bytes);
        });
      });
    });
  };

  /** The bytes of the open file `st` describes, within the read's limits. */
  const contents = (fd: number, st: fs.Stats, shown: string): Buffer => {
    requireRegularFile(st, "read", shown);
    refuseLinked(refuseHardLinks, st, "read", shown);
    if (st.size > maxReadBytes) {
      throw new LimitExceeded(`cannot read ${shown}: it is ${st.size} bytes, more than maxReadBytes (${maxReadBytes})`, "maxReadBytes");
    }
    return readAll(fd, st.size);
  };

  /**
   * The bytes of a kept file, proved at its path just now, within the read's
   * limits. Its status is the one seen when the read was decided; a byte
   * more is asked for, so a file that grew since is read again in full, and
   * one that came up short is checked against its status now, as is one
   * that was too large then.
   */
  const keptContents = (kept: KeptFile, shown: string): Buffer => {
    const { fd, st } = kept;
    // Refusing hard links, the count is read now, so a link made while the access was recorded is caught too; a file too large then is judged by its size now.
    if (refuseHardLinks || st.size > maxReadBytes) return contents(fd, fs.fstatSync(fd), shown);
    // The size decided with, and one byte past it into a scratch byte that is never returned: one preadv, and the caller's memory is exactly the file.
    const buf = Buffer.allocUnsafeSlow(st.size);
    const n = fs.readvSync(fd, [buf, BEYOND_END], 0);
    if (n === st.size) return buf;
    const now = fs.fstatSync(fd);
    return n > st.size || now.size !== n ? contents(fd, now, shown) : firstBytes(buf, n);
  };

  const fileSystem: FileSystem = {
    baseDir,
    openVerification: anchor.kind,

    read(cap, input, options) {
      return run(
        cap,
        async (access) => {
          const t = target(access, cap, "fs.read", input, options, false, shortcuts);
          const { req, shown } = t;
          await access.proceed();
          return io("read", shown, () => {
            if (t.kept !== null && proved(req.path, t.kept.fd)) return keptContents(t.kept, shown);
            // Taken on a kept descriptor's word, which no longer holds: the path is looked at and decided now, before anything is opened.
            const u = t.kept !== null && !shortcuts.files.stillAt(req.path) ? resolvedNow(access, cap, t) : t;
            const at = u.req.path;
            const fd = fs.openSync(at + u.slash, READ_FLAGS);
            let kept = false;
            try {
              const real = anchor.realPathOf(fd, at);
              verify(access, cap, u, real);
              const st = fs.fstatSync(fd);
              if (real === at) shortcuts.files.remember(at, st);
              const bytes = contents(fd, st, shown);
              kept = shortcuts.keeping && real === at && keep(at, fd, st);
              return bytes;
            } finally {
              if (!kept) fs.closeSync(fd);
            }
          });
        },
        (buf) => buf.byteLength,
      );
    },

    write(cap, input, data, options) {
      return run(cap, (access) => put(access, cap, input, data, options, false));
    },

    append(cap, input, data, options) {
      return run(cap, (access) => put(access, cap, input, data, options, true));
    },

    list(cap, input, options) {
      return run(
        cap,
        async (access) => {
          const t = target(access, cap, "fs.list", input, options);
          const { req, shown } = t;
          await access.proceed();
          return io("list", shown, () =>
            withOpen(req.path, DIR_FLAGS, (fd) => {
              verify(access, cap, t, anchor.realPathOf(fd, req.path));
              const dir = fs.opendirSync(anchor.self(fd, req.path));
              const entries: DirEntry[] = [];
              try {
                for (let d = dir.readSync(); d !== null; d = dir.readSync()) {
                  if (entries.length === maxListEntries) {
                    throw new LimitExceeded(`cannot list ${shown}: it has more than maxListEntries (${maxListEntries}) entries`, "maxListEntries");
                  }
                  entries.push(Object.freeze({ name: d.name, type: typeOf(d) }));
                }
              } finally {
                dir.closeSync();
              }
              entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
              return Object.freeze(entries);
            }),
          );
        },
        jsonBytes,
      );
    },

    stat(cap, input, options) {
      return run(
        cap,
        async (access) => {
          const t = target(access, cap, "fs.list", input, options);
          await access.proceed();
          return io("stat", t.shown, () =>
            inParent(access, cap, t, "stat", (entry): FileInfo => {
              const st = fs.lstatSync(entry + t.slash);
              refuseLinked(refuseHardLinks, st, "stat", t.shown);
              return Object.freeze({ type: typeOf(st), size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 });
            }),
          );
        },
        jsonBytes,
      );
    },

    mkdir(cap, input, options) {
      return run(cap, async (access) => {
        const recursive = option(options, "recursive") ?? false;
        if (typeof recursive !== "boolean") throw new InvalidInput(`options.recursive must be a boolean, got ${typeof recursive}`);
        const t = resolvedTarget(access, cap, trusted, "fs.write", input, options, baseDir, false, null);
        // The event is about the target, whichever level is decided first.
        access.about(t.req);
        // Decided before the levels are looked for: a target outside the grant has no parents worth looking at.
        const decision = check(cap, t.req);
        if (!decision.allowed) deny(access, t.req, decision, t.shown);
        const levels = recursive ? missingLevels(t.req.path) : [t.req.path];
        // Every directory that will be created must be allowed; the request itself is charged once, for the target.
        const atLevel = (level: string): Target => ({ req: { ...t.req, path: level }, shown: shownAt(t, level), slash: "", kept: null });
        for (const level of levels.slice(0, -1)) {
          const { req, shown } = atLevel(level);
          const decision = check(cap, req);
          if (!decision.allowed) deny(access, req, decision, shown);
          access.decided(req, decision);
        }
        charge(access, cap, t);
        await access.proceed();
        io("create directory", t.shown, () => {
          for (const level of levels) {
            inParent(access, cap, atLevel(level), "create directory", (entry) => {
              try {
                fs.mkdirSync(entry);
              } catch (error) {
                if (!(recursive && fs.lstatSync(entry, { throwIfNoEntry: false })?.isDirectory() === true)) throw error;
              }
            });
          }
        });
      });
    },

    delete(cap, input, options) {
      return run(cap, async (access) => {
        const t = target(access, cap, "fs.delete", input, options, true);
        await access.proceed();
        io("delete", t.shown, () => {
          inParent(access, cap, t, "delete", (entry) => {
            if (fs.lstatSync(entry).isDirectory()) fs.rmdirSync(entry + t.slash);
            else fs.unlinkSync(entry + t.slash);
          });
        });
      });
    },
  };
  return Object.freeze(fileSystem);
}
