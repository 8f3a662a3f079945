import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { InvalidInput, type AuditSink, type Capability } from "../../kernel/index.js";
import { describeIssues, snapshotPlainData, trustedMintsOption } from "../../kernel/internal.js";
import { auditOption, ownSettings } from "../audited.js";
import { detectAnchor } from "./anchor.js";
import { confinedFileSystem } from "./confined.js";


/** Per-call options: the tenant the request acts for, required by capabilities confined to tenants. */
export interface FsCallOptions {
  readonly tenant?: string;
}

/** Options of `mkdir`: with `recursive`, missing parents are created too, each of them authorized for write. */
export interface MkdirOptions extends FsCallOptions {
  readonly recursive?: boolean;
}

/** What a directory entry is. Symbolic links are reported as links, not followed. */
export type EntryType = "file" | "directory" | "symlink" | "other";

/** One entry of a directory listing. */
export interface DirEntry {
  readonly name: string;
  readonly type: EntryType;
}

/** Metadata of one file or directory, as plain data. */
export interface FileInfo {
  readonly type: EntryType;
  readonly size: number;
  readonly mtimeMs: number;
  /** Permission bits, such as 0o644. */
  readonly mode: number;
}

/**
 * A confined file system. Every method takes the capability first, decides
 * the path as written (made absolute against `baseDir`, `..` removed), then
 * makes it canonical (real path, symbolic links resolved, looking only where
 * the capability reaches), authorizes that, and only then acts, verifying
 * what it opened. A request denied as written does no I/O at all, and a
 * denial names the path as the caller wrote it, never what it resolved to.
 * A path written with a trailing separator (`a.txt/`) names a directory, and
 * fails as the operating system would (ENOTDIR) when it is not one. Methods return promises,
 * so that the audit event of a call (when the file system has a sink) is
 * written before its result is returned; the I/O itself is synchronous and
 * bounded by the size limits, so nothing can change between the check and
 * the use but what the open-then-verify defences already handle. Methods
 * return data; no descriptor or handle ever leaves this object. Every error,
 * invalid input included, arrives as a rejection.
 */
export interface FileSystem {
  /** The real path relative paths are resolved against. It confines nothing by itself: the capability does. */
  readonly baseDir: string;
  /** How opened files are verified against a path swapped in after the check: `proc-fd` (exact, Linux) or `identity` (narrows the race window). */
  readonly openVerification: "proc-fd" | "identity";
  /** The whole content of a regular file (`fs.read`); LimitExceeded above maxReadBytes. */
  read(cap: Capability<{ readonly fs: "read" }>, path: string, options?: FsCallOptions): Promise<Buffer>;
  /** Creates or replaces a regular file (`fs.write`); LimitExceeded above maxWriteBytes. Strings are written as UTF-8. */
  write(cap: Capability<{ readonly fs: "write" }>, path: string, data: string | Uint8Array, options?: FsCallOptions): Promise<void>;
  /** Appends to a regular file, creating it if needed (`fs.write`); LimitExceeded when one call's data exceeds maxWriteBytes. */
  append(cap: Capability<{ readonly fs: "write" }>, path: string, data: string | Uint8Array, options?: FsCallOptions): Promise<void>;
  /** The entries of a directory, sorted by name (`fs.list`); LimitExceeded above maxListEntries. */
  list(cap: Capability<{ readonly fs: "list" }>, path: string, options?: FsCallOptions): Promise<readonly DirEntry[]>;
  /** Metadata of a file or directory, links followed (`fs.list`). */
  stat(cap: Capability<{ readonly fs: "list" }>, path: string, options?: FsCallOptions): Promise<FileInfo>;
  /** Creates a directory (`fs.write`, for every directory created). */
  mkdir(cap: Capability<{ readonly fs: "write" }>, path: string, options?: MkdirOptions): Promise<void>;
  /**
   * Deletes a file or an empty directory (`fs.delete`). The last name is not
   * followed: deleting a symbolic link removes the link, never its target.
   */
  delete(cap: Capability<{ readonly fs: "delete" }>, path: string, options?: FsCallOptions): Promise<void>;
}

/** Options of `createFileSystem`. */
export interface FileSystemOptions {
  /** An existing directory that relative paths resolve against. */
  readonly baseDir: string;
  /** Largest file `read` returns, in bytes (default 8 MiB). */
  readonly maxReadBytes?: number;
  /** Most bytes one `write` or `append` writes (default 8 MiB). */
  readonly maxWriteBytes?: number;
  /** Most entries `list` returns (default 10 000). */
  readonly maxListEntries?: number;
  /**
   * Refuses to read, write, append to or stat a regular file that has more
   * than one hard link (FileSystemError, EMLINK). A hard link is a second
   * name for the same file: one inside the granted tree to a file outside it
   * makes the outside file readable and writable through the grant, and no
   * path check can see it. The link count is read from the opened
   * descriptor (the entry itself for stat), the file acted on, so a link
   * made in between cannot slip past. Default false.
   */
  readonly refuseHardLinks?: boolean;
  /**
   * Where every call is recorded: one resource event per call, allowed or
   * denied, written before the call settles; a failing sink fails the call
   * with AuditFailure. Without it, nothing is recorded.
   */
  readonly audit?: AuditSink;
  /**
   * The mints whose roots this file system accepts (their `Mint.id`s). A
   * capability another mint issued is denied at its first decision, before
   * any path is looked at. Without it, any mint's roots are accepted.
   */
  readonly mints?: readonly string[];
}

/** Options after validation, with defaults applied and `baseDir` made real. */
export interface FsSettings {
  readonly baseDir: string;
  readonly maxReadBytes: number;
  readonly maxWriteBytes: number;
  readonly maxListEntries: number;
  readonly refuseHardLinks: boolean;
}

const MIB = 1024 * 1024;
const limit = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const optionsSchema = z.strictObject({
  baseDir: z.string().min(1).regex(/^[^\0]*$/, "must not contain NUL"),
  maxReadBytes: limit.default(8 * MIB),
  maxWriteBytes: limit.default(8 * MIB),
  maxListEntries: limit.default(10_000),
  refuseHardLinks: z.boolean().default(false),
});

/** Validates `options` and resolves `baseDir` to an existing directory's real path; throws InvalidInput naming the bad field. */
export function parseFileSystemOptions(options: FileSystemOptions): FsSettings {
  const parsed = optionsSchema.safeParse(snapshotPlainData(ownSettings(options), "file system options"));
  if (!parsed.success) throw new InvalidInput(describeIssues("file system options", parsed.error));
  const { baseDir, ...limits } = parsed.data;
  let real: string;
  try {
    real = fs.realpathSync.native(path.resolve(baseDir));
  } catch {
    throw new InvalidInput(`file system options: baseDir ${JSON.stringify(baseDir)} does not exist or cannot be resolved`);
  }
  if (!fs.statSync(real).isDirectory()) throw new InvalidInput(`file system options: baseDir ${JSON.stringify(baseDir)} is not a directory`);
  return Object.freeze({ baseDir: real, ...limits });
}

/**
 * Creates a confined file system: a frozen object whose methods are the only
 * way to its files. It uses the strongest check-then-use defence the
 * platform offers (see fs-anchor.ts), and records every call in
 * `options.audit` when given. Throws InvalidInput for bad options.
 */
export function createFileSystem(options: FileSystemOptions): FileSystem {
  const sink = auditOption(options, "createFileSystem");
  const trusted = trustedMintsOption(options, "createFileSystem");
  const settings = parseFileSystemOptions(options);
  return confinedFileSystem(settings, detectAnchor(settings.baseDir), sink, trusted);
}
