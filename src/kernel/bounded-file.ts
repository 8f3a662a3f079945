/**
 * Reading a file a person named (a configuration, a grant, a token file),
 * bounded: a path may name a device that never ends (/dev/zero), a
 * directory, or a file of gigabytes, and reading it whole would hang the
 * process or exhaust its memory. Every failure is an InvalidInput naming
 * what was being read.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { InvalidInput } from "./errors.js";

/** The text of `file` (UTF-8), refused when it holds more than `maxBytes`; `what` names it in errors ("gateway config"). */
export function readBoundedText(file: string, maxBytes: number, what: string): string {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    throw new InvalidInput(`cannot read ${what} ${JSON.stringify(file)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  try {
    // One byte past the limit tells a file at the limit from a larger one, without reading the rest.
    const buffer = Buffer.alloc(Math.min(maxBytes + 1, 64 * 1024));
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const n = readSync(fd, buffer, 0, Math.min(buffer.length, maxBytes + 1 - total), null);
      if (n === 0) break;
      chunks.push(Buffer.from(buffer.subarray(0, n)));
      total += n;
      if (total > maxBytes) throw new InvalidInput(`${what} ${JSON.stringify(file)} is larger than ${maxBytes} bytes`);
    }
    return Buffer.concat(chunks, total).toString("utf8");
  } catch (e) {
    if (e instanceof InvalidInput) throw e;
    throw new InvalidInput(`cannot read ${what} ${JSON.stringify(file)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}
