import fs from "node:fs";
import path from "node:path";
import { InvalidInput } from "../../kernel/index.js";

/*
 * Canonicalization of file paths, before anything is authorized. Two steps:
 *
 * 1. Lexical (no disk access): the path is made absolute against the base
 *    directory and `.`, `..`, repeated and trailing separators are removed.
 *    `..` is applied to the path as written, like `cd -L` in a shell: in
 *    `dir/link/..` it cancels `link`, it does not climb out of the link's
 *    target. Either reading is safe because step 2 and the check after
 *    opening look at what the path really names.
 * 2. Real (path resolution only: realpath, readlink): every symbolic link is
 *    resolved, in parent directories too, and also links whose target does
 *    not exist yet, so a file about to be created through a dangling link is
 *    seen where it would really be created. On a case-insensitive file system
 *    realpath returns the stored spelling, so two spellings of one existing
 *    file authorize alike.
 *
 * Resolution never throws for a path that is missing, unreadable or a loop:
 * it resolves as far as the disk allows and appends the rest. Otherwise the
 * kind of error would tell a caller things about paths it may not touch; the
 * operation after authorization reports the system's error instead.
 *
 * Resources authorize the lexical path before step 2, so a denied path is
 * never looked at, and resolve with `realPathWithin`: a name is looked up
 * by hand (readlink) only where the capability allows it, so a symbolic link
 * inside the grant that points outside is never followed further.
 */

/** PATH_MAX on Linux; also the kernel's limit on a request's path. */
const MAX_PATH_LENGTH = 4096;
/** Linux's own limit on links followed while resolving one path (MAXSYMLINKS). */
const MAX_LINK_HOPS = 40;

function quote(input: string): string {
  return JSON.stringify(input.length > 80 ? `${input.slice(0, 80)}…` : input);
}

/**
 * Checks that `input` can name a file and makes it absolute against
 * `baseDir`, removing `.`, `..`, repeated and trailing separators, without
 * touching the disk. Throws InvalidInput for anything that is not a
 * non-empty string without NUL bytes, within PATH_MAX.
 */
export function lexicalPath(input: unknown, baseDir: string): string {
  if (typeof input !== "string") {
    throw new InvalidInput(`path must be a string, got ${input === null ? "null" : typeof input}`);
  }
  if (input.length === 0) throw new InvalidInput('path is empty; name a file, or "." for the base directory');
  if (input.includes("\0")) {
    throw new InvalidInput(`path ${quote(input)} contains a NUL byte, which no file name can hold; it is refused rather than cut short`);
  }
  const absolute = input.length > MAX_PATH_LENGTH ? input : path.resolve(baseDir, input);
  if (absolute.length > MAX_PATH_LENGTH) {
    throw new InvalidInput(`path ${quote(input)} is longer than ${MAX_PATH_LENGTH} characters once made absolute`);
  }
  return absolute;
}

function join(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

function linkTarget(p: string): string | null {
  try {
    return fs.readlinkSync(p);
  } catch {
    // Not a link, missing, or unreadable: there is nothing to follow.
    return null;
  }
}

/**
 * Why a path may not be looked at, or null when it may: resolution stops at
 * the first refused path and returns the refusal.
 */
export type PathRefusal<D extends object> = (path: string) => D | null;

const LOOK_ANYWHERE: PathRefusal<never> = () => null;

function resolveReal<D extends object>(p: string, hops: { count: number }, refuse: PathRefusal<D>): string | D {
  try {
    return fs.realpathSync.native(p);
  } catch {
    // Something along `p` is missing or unreadable: resolve the parent, then look at the last name ourselves.
  }
  const parent = path.dirname(p);
  if (parent === p) return p;
  const realParent = resolveReal(parent, hops, refuse);
  if (typeof realParent !== "string") return realParent;
  const here = join(realParent, path.basename(p));
  const refusedHere = refuse(here);
  if (refusedHere !== null) return refusedHere;
  const target = linkTarget(here);
  // A dangling link: follow it by hand, so what would be created through it is judged where it would land.
  if (target === null || hops.count >= MAX_LINK_HOPS) return here;
  hops.count += 1;
  const next = path.resolve(path.dirname(here), target);
  return refuse(next) ?? resolveReal(next, hops, refuse);
}

/**
 * The canonical real path of the absolute, lexically clean `absolute`: every
 * symbolic link resolved, in parent directories and in dangling links too.
 * The result is an absolute path without `.`, `..` or empty segments.
 */
export function realPath(absolute: string): string {
  return resolveReal(absolute, { count: 0 }, LOOK_ANYWHERE);
}

/**
 * `realPath` for a path the caller may reach as written: a name is read by
 * hand (a missing file's last name, a dangling link's target) only when
 * `refuse` lets it, so resolution never looks further at what lies outside.
 * Returns the first refusal instead of a path when the real path would leave
 * what `refuse` lets through.
 */
export function realPathWithin<D extends object>(absolute: string, refuse: PathRefusal<D>): string | D {
  return resolveReal(absolute, { count: 0 }, refuse);
}

/**
 * Like `realPath`, but the last name is kept as written rather than followed:
 * for operations on a directory entry itself, such as deleting a symbolic
 * link rather than the file it points to.
 */
export function realEntryPath(absolute: string): string {
  return realEntryPathWithin(absolute, LOOK_ANYWHERE);
}

/** `realEntryPath` confined as `realPathWithin` is. */
export function realEntryPathWithin<D extends object>(absolute: string, refuse: PathRefusal<D>): string | D {
  const parent = path.dirname(absolute);
  if (parent === absolute) return absolute;
  const realParent = resolveReal(parent, { count: 0 }, refuse);
  return typeof realParent === "string" ? join(realParent, path.basename(absolute)) : realParent;
}

/**
 * Whether `input` (a path as the caller wrote it) names a directory by its
 * form: it ends with a separator, `.` or `..`. The operating system refuses
 * `a.txt/` as not a directory, so the resources do too, although the lexical
 * path has lost the trailing separator.
 */
export function namesDirectory(input: string): boolean {
  const last = input.slice(input.lastIndexOf("/") + 1);
  return last === "" || last === "." || last === "..";
}
