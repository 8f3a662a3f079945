/**
 * `agentcap/fs`: the confined file system. Every path is canonicalized
 * (`..`, symlinks anywhere, files that do not exist yet), authorized, and
 * re-checked after open; a denied request does no I/O, and no handle leaves it.
 */
export { createFileSystem } from "./file-system.js";
export type { DirEntry, EntryType, FileInfo, FileSystem, FileSystemOptions, FsCallOptions, MkdirOptions } from "./file-system.js";
