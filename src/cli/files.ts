/**
 * The files a command line names, read and written so that whatever path
 * was typed, the command ends with a readable InvalidInput naming the
 * option and the file, never a Node stack trace: a file that is missing, a
 * directory, a path with a NUL byte, a device that never ends (reads are
 * bounded), a directory nobody may write to.
 */
import { appendFileSync, mkdirSync, writeFileSync, type WriteFileOptions } from "node:fs";
import { dirname } from "node:path";
import { InvalidInput } from "../kernel/index.js";
import { readBoundedText } from "../kernel/internal.js";

/** The largest file a command reads whole (grants, requests, key sets, checkpoint files): far beyond any real one. */
export const MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024;

/** The text of `file`, at most `maxBytes`; `what` names it in the error ("--grant file"). */
export function readInputFile(file: string, what: string, maxBytes: number = MAX_INPUT_FILE_BYTES): string {
  return readBoundedText(file, maxBytes, what);
}

const cannotWrite = (what: string, file: string, e: unknown) =>
  new InvalidInput(`cannot write ${what} ${JSON.stringify(file)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });

/** Writes `text` to `file` with `options` (mode, flag); `what` names it in the error. */
export function writeOutputFile(file: string, text: string, what: string, options?: WriteFileOptions): void {
  try {
    writeFileSync(file, text, options);
  } catch (e) {
    throw cannotWrite(what, file, e);
  }
}

/** Appends `text` to `file`. */
export function appendOutputFile(file: string, text: string, what: string): void {
  try {
    appendFileSync(file, text);
  } catch (e) {
    throw cannotWrite(what, file, e);
  }
}

/** Makes the directory `file` is to be created in, with its parents. */
export function makeParentDirectory(file: string, what: string): void {
  try {
    mkdirSync(dirname(file), { recursive: true });
  } catch (e) {
    throw new InvalidInput(`cannot make the directory of ${what} ${JSON.stringify(file)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
