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
import { audited, jsonBytes, type Access } from "../audited.js";
import type { Anchor } from "./anchor.js";
import { asFileSystemError, fileSystemError } from "./errors.js";
import { lexicalPath, realEntryPath, realPath } from "./paths.js";
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

/** Authorizes and charges, recording the decision; throws the kernel's typed denial. */
function authorized(access: Access, cap: Capability, action: Action, p: string, tenant: string | undefined): FsRequest {
  const req = request(action, p, tenant);
  const decision = access.decided(req, authorize(cap, req));
  if (!decision.allowed) throw denialError(decision);
  return req;
}

/**
 * Throws unless `real`, the real path of what was actually opened, may be
 * acted on. It is normally `req.path` itself; when another process has
 * swapped a component of the path since it was resolved, it is whatever the
 * swap led to, and the capability decides on that. Null means the anchor
 * could not establish it, which is refused.
 */
function verify(access: Access, cap: Capability, req: FsRequest, real: string | null): void {
  if (real === req.path) return;
  if (real === null || !real.startsWith("/")) {
    const refused: Denied = {
      allowed: false,
      code: "ERR_CAPABILITY_DENIED",
      reason: `${req.path} changed between the check and the open (a component was replaced, perhaps by a symbolic link); the ${req.action} request was refused`,
      because: `found ${req.path} changed between the check and the open`,
      capabilityId: cap.id,
      link: cap.depth,
      linkId: cap.id,
      rule: "fs.verify",
    };
    throw denialError(access.decided(req, refused) as Denied);
  }
  const opened = { ...req, path: real };
  const decision = access.decided(opened, check(cap, opened));
  if (!decision.allowed) throw denialError(decision);
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

function readAll(fd: number, size: number): Buffer {
  // Unpooled, so the caller's Buffer shares no memory with anything else; every byte returned was read.
  const buf = Buffer.allocUnsafeSlow(size);
  let done = 0;
  while (done < size) {
    const n = fs.readSync(fd, buf, done, size - done, null);
    if (n === 0) break;
    done += n;
  }
  if (done === size) return buf;
  // The file shrank after fstat: copy out what was read, never the uninitialized rest.
  const out = Buffer.allocUnsafeSlow(done);
  buf.copy(out, 0, 0, done);
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
export function confinedFileSystem(settings: FsSettings, anchor: Anchor, sink?: AuditSink): FileSystem {
  const { baseDir, maxReadBytes, maxWriteBytes, maxListEntries } = settings;

  /** Opens the parent directory of `req.path`, verifies it, and acts on the last name inside that open directory. */
  const inParent = <T>(access: Access, cap: Capability, req: FsRequest, verb: string, act: (entry: string) => T): T => {
    const dir = path.dirname(req.path);
    if (dir === req.path) throw fileSystemError(verb, req.path, "EPERM");
    const name = path.basename(req.path);
    return withOpen(dir, DIR_FLAGS, (dirFd) => {
      const realDir = anchor.realPathOf(dirFd, dir);
      verify(access, cap, req, realDir === null ? null : path.join(realDir, name));
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

  /** Validates the call, resolves the path, then authorizes (and charges) the request. */
  const resolveAndAuthorize = (access: Access, cap: Capability, action: Action, input: unknown, options: unknown, resolve = realPath): FsRequest => {
    const tenant = tenantOf(options);
    return authorized(access, cap, action, resolve(lexicalPath(input, baseDir)), tenant);
  };

  /** Runs one method's access through the audit; methods that return nothing report 0 bytes. */
  const run = <T>(cap: Capability, act: (access: Access) => T, size: (result: T) => number | null = () => 0): Promise<T> => audited(sink, cap, act, size);

  const put = (access: Access, cap: Capability, input: unknown, data: unknown, options: unknown, append: boolean): void => {
    const verb = append ? "append to" : "write";
    const bytes = bytesOf(data, verb);
    const req = resolveAndAuthorize(access, cap, "fs.write", input, options);
    io(verb, req.path, () => {
      inParent(access, cap, req, verb, (entry) => {
        withOpen(entry, WRITE_FLAGS | (append ? O_APPEND : O_TRUNC), (fd) => {
          requireRegularFile(fs.fstatSync(fd), verb, req.path);
          writeAll(fd, bytes);
        });
      });
    });
  };

  const fileSystem: FileSystem = {
    baseDir,
    openVerification: anchor.kind,

    read(cap, input, options) {
      return run(
        cap,
        (access) => {
          const req = resolveAndAuthorize(access, cap, "fs.read", input, options);
          return io("read", req.path, () =>
            withOpen(req.path, READ_FLAGS, (fd) => {
              verify(access, cap, req, anchor.realPathOf(fd, req.path));
              const st = fs.fstatSync(fd);
              requireRegularFile(st, "read", req.path);
              if (st.size > maxReadBytes) {
                throw new LimitExceeded(`cannot read ${req.path}: it is ${st.size} bytes, more than maxReadBytes (${maxReadBytes})`, "maxReadBytes");
              }
              return readAll(fd, st.size);
            }),
          );
        },
        (buf) => buf.byteLength,
      );
    },

    write(cap, input, data, options) {
      return run(cap, (access) => {
        put(access, cap, input, data, options, false);
      });
    },

    append(cap, input, data, options) {
      return run(cap, (access) => {
        put(access, cap, input, data, options, true);
      });
    },

    list(cap, input, options) {
      return run(
        cap,
        (access) => {
          const req = resolveAndAuthorize(access, cap, "fs.list", input, options);
          return io("list", req.path, () =>
            withOpen(req.path, DIR_FLAGS, (fd) => {
              verify(access, cap, req, anchor.realPathOf(fd, req.path));
              const dir = fs.opendirSync(anchor.self(fd, req.path));
              const entries: DirEntry[] = [];
              try {
                for (let d = dir.readSync(); d !== null; d = dir.readSync()) {
                  if (entries.length === maxListEntries) {
                    throw new LimitExceeded(`cannot list ${req.path}: it has more than maxListEntries (${maxListEntries}) entries`, "maxListEntries");
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
        (access) => {
          const req = resolveAndAuthorize(access, cap, "fs.list", input, options);
          return io("stat", req.path, () =>
            inParent(access, cap, req, "stat", (entry): FileInfo => {
              const st = fs.lstatSync(entry);
              return Object.freeze({ type: typeOf(st), size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 });
            }),
          );
        },
        jsonBytes,
      );
    },

    mkdir(cap, input, options) {
      return run(cap, (access) => {
        const recursive = option(options, "recursive") ?? false;
        if (typeof recursive !== "boolean") throw new InvalidInput(`options.recursive must be a boolean, got ${typeof recursive}`);
        const tenant = tenantOf(options);
        const target = realPath(lexicalPath(input, baseDir));
        // The event is about the target, whichever level is decided first.
        access.about(request("fs.write", target, tenant));
        const levels = recursive ? missingLevels(target) : [target];
        // Every directory that will be created must be allowed; the request itself is charged once, for the target.
        for (const level of levels.slice(0, -1)) {
          const levelRequest = request("fs.write", level, tenant);
          const decision = access.decided(levelRequest, check(cap, levelRequest));
          if (!decision.allowed) throw denialError(decision);
        }
        const req = authorized(access, cap, "fs.write", target, tenant);
        io("create directory", target, () => {
          for (const level of levels) {
            inParent(access, cap, { ...req, path: level }, "create directory", (entry) => {
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
      return run(cap, (access) => {
        const req = resolveAndAuthorize(access, cap, "fs.delete", input, options, realEntryPath);
        io("delete", req.path, () => {
          inParent(access, cap, req, "delete", (entry) => {
            if (fs.lstatSync(entry).isDirectory()) fs.rmdirSync(entry);
            else fs.unlinkSync(entry);
          });
        });
      });
    },
  };
  return Object.freeze(fileSystem);
}
