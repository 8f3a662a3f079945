import { AgentcapError, FileSystemError } from "../../kernel/index.js";

const MEANINGS: ReadonlyMap<string, string> = new Map([
  ["ENOENT", "no such file or directory"],
  ["EEXIST", "it already exists"],
  ["ENOTDIR", "a component of the path is not a directory"],
  ["EISDIR", "it is a directory"],
  ["ENOTEMPTY", "the directory is not empty"],
  ["EACCES", "permission denied by the operating system"],
  ["EPERM", "operation not permitted by the operating system"],
  ["ELOOP", "it is a symbolic link that could not be resolved safely (a loop, or it was swapped in while being opened)"],
  ["ENXIO", "it is a special file with nothing on the other end"],
  ["ENOSPC", "no space left on the device"],
  ["EROFS", "the file system is read-only"],
  ["ENAMETOOLONG", "a file name is too long"],
  ["EFTYPE", "it is not a regular file (a device, FIFO or socket)"],
  ["EMLINK", "it has more than one hard link, and this file system refuses such files (refuseHardLinks)"],
]);

function errnoOf(error: unknown): string | undefined {
  if (!(error instanceof Error) || !("code" in error)) return undefined;
  const code = error.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** The FileSystemError for `errno` while doing `op` on the canonical `path`. */
export function fileSystemError(op: string, path: string, errno: string, cause?: unknown): FileSystemError {
  const meaning = MEANINGS.get(errno) ?? "the operating system refused it";
  return new FileSystemError(`cannot ${op} ${path}: ${meaning} (${errno})`, errno, cause === undefined ? undefined : { cause });
}

/**
 * Turns an error thrown while acting on the canonical `path` into what the
 * caller sees: agentcap's own errors pass through; an OS error becomes a
 * FileSystemError naming `path`, never the /proc/self/fd path used to reach
 * it. Anything else is a bug and is rethrown as it is.
 */
export function asFileSystemError(op: string, path: string, error: unknown): unknown {
  if (error instanceof AgentcapError) return error;
  const errno = errnoOf(error);
  return errno === undefined ? error : fileSystemError(op, path, errno, error);
}
