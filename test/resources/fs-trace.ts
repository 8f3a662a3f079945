import fs from "node:fs";
import { vi } from "vitest";
import { isWithin } from "../../src/kernel/canonical-forms.ts";

/*
 * A tracer over node:fs for the "a denied request touches nothing outside
 * its grant" properties: every synchronous fs function (and
 * realpathSync.native) is wrapped, and every path argument is recorded with
 * the function it was given to. Resources reach node:fs through its default
 * export, which is what vi.spyOn replaces.
 */

export interface Touch {
  readonly fn: string;
  readonly path: string;
}

export interface FsTrace {
  /** Every path given to an fs function since the trace started (or was cleared). */
  touches(): readonly Touch[];
  clear(): void;
  /** Removes the wrappers. */
  stop(): void;
}

function pathsIn(args: readonly unknown[]): string[] {
  // Only the leading arguments name files: (path), (src, dest), (target, path). Numbers are descriptors.
  return args.slice(0, 2).flatMap((a) => (typeof a === "string" ? [a] : a instanceof URL ? [a.pathname] : []));
}

/** Starts recording every path node:fs is asked about. */
export function traceFs(): FsTrace {
  const seen: Touch[] = [];
  const spies: { mockRestore(): void }[] = [];
  const record = (fn: string, args: readonly unknown[]) => {
    for (const path of pathsIn(args)) seen.push({ fn, path });
  };
  const fsObject = fs as unknown as Record<string, unknown>;
  for (const name of Object.keys(fs)) {
    if (!name.endsWith("Sync") || typeof fsObject[name] !== "function") continue;
    const original = fsObject[name] as (...args: unknown[]) => unknown;
    const native = (original as unknown as { native?: (...args: unknown[]) => unknown }).native;
    spies.push(
      vi.spyOn(fsObject as Record<string, (...args: unknown[]) => unknown>, name).mockImplementation((...args: unknown[]) => {
        record(name, args);
        return original(...args);
      }),
    );
    // realpathSync.native is a property of realpathSync; the spy above replaced the function it hangs from.
    if (native !== undefined) {
      (fsObject[name] as unknown as { native: (...args: unknown[]) => unknown }).native = (...args: unknown[]) => {
        record(`${name}.native`, args);
        return native(...args);
      };
    }
  }
  return {
    touches: () => [...seen],
    clear: () => {
      seen.length = 0;
    },
    stop: () => {
      for (const spy of spies.splice(0)) spy.mockRestore();
    },
  };
}

/**
 * The touches that are neither inside one of `roots` nor on the way to one (an
 * ancestor directory, which every look-up passes through).
 */
export function outsideOf(touches: readonly Touch[], roots: readonly string[]): Touch[] {
  return touches.filter((t) => !roots.some((root) => isWithin(t.path, root) || isWithin(root, t.path)));
}
