import { z } from "zod";
import type { FsOp } from "../../kernel/index.js";
import { lexicalPath, lineageReaches, realPathWithin } from "../../resources/fs/internal.js";
import type { DirEntry, FileSystem } from "../../resources/fs/index.js";
import { defineBuiltinTool, type NeedsContext, type Tool } from "../define.js";

/*
 * File tools over the confined file system. Each call needs the requests the
 * resource will make: the path as the caller wrote it (made absolute against
 * the file system's base directory, `..` removed), and, where symbolic links
 * make it differ, its real path, so the handler's capability allows exactly
 * that one file and operation. The real path is looked for only where the
 * caller's grants reach, as the resource itself does: a path the caller
 * cannot have is declared as written and denied before anything is looked at.
 */

const path = z.string().min(1).describe("File path, absolute or relative to the workspace.");

const readInput = z.object({ path });
const writeInput = z.object({ path, content: z.string().describe("The whole new content, as text.") });
const listInput = z.object({ path: path.describe("Directory path, absolute or relative to the workspace.") });

/** The three file tools. */
export interface FileTools {
  readonly read: Tool<z.input<typeof readInput>, { readonly path: string; readonly text: string }>;
  readonly write: Tool<z.input<typeof writeInput>, { readonly path: string; readonly bytes: number }>;
  readonly list: Tool<z.input<typeof listInput>, { readonly path: string; readonly entries: readonly DirEntry[] }>;
}

/** Options of the file tools. */
export interface FileToolOptions {
  /** Names of the tools (default read_file, write_file, list_files). */
  readonly names?: { readonly read?: string; readonly write?: string; readonly list?: string };
}

/** Read, write and list tools over the confined file system `files`. */
export function fileTools(files: FileSystem, options: FileToolOptions = {}): FileTools {
  // Generic in the operation, so each tool's handler capability is typed to exactly its own operation.
  const need = <Op extends FsOp>(op: Op, p: string, ctx: NeedsContext): { readonly action: `fs.${Op}`; readonly path: string }[] => {
    const written = { action: `fs.${op}` as const, path: lexicalPath(p, files.baseDir) };
    const reaches = (q: string) => lineageReaches(ctx.lineage, { ...written, path: q });
    if (!reaches(written.path)) return [written];
    const real = realPathWithin(written.path, (q) => (reaches(q) ? null : { outside: q }));
    // A real path the caller cannot have is left to the resource, which denies it in the caller's words.
    return typeof real === "string" && real !== written.path && reaches(real) ? [written, { ...written, path: real }] : [written];
  };
  const on = (tenant: string | null) => (tenant === null ? {} : { tenant });
  return Object.freeze({
    read: defineBuiltinTool(
      { name: options.names?.read ?? "read_file", description: "Read a text file.", input: readInput, needs: (i, ctx) => need("read", i.path, ctx) },
      async (i, cap, ctx) => ({ path: i.path, text: (await files.read(cap, i.path, on(ctx.tenant))).toString("utf8") }),
    ),
    write: defineBuiltinTool(
      { name: options.names?.write ?? "write_file", description: "Create or replace a text file.", input: writeInput, needs: (i, ctx) => need("write", i.path, ctx) },
      async (i, cap, ctx) => {
        await files.write(cap, i.path, i.content, on(ctx.tenant));
        return { path: i.path, bytes: Buffer.byteLength(i.content) };
      },
    ),
    list: defineBuiltinTool(
      { name: options.names?.list ?? "list_files", description: "List the entries of a directory.", input: listInput, needs: (i, ctx) => need("list", i.path, ctx) },
      async (i, cap, ctx) => ({ path: i.path, entries: await files.list(cap, i.path, on(ctx.tenant)) }),
    ),
  });
}
