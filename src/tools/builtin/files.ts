import { z } from "zod";
import type { FsOp } from "../../kernel/index.js";
import { lexicalPath, realPath } from "../../resources/fs/internal.js";
import type { DirEntry, FileSystem } from "../../resources/fs/index.js";
import { defineTool, type Tool } from "../define.js";

/*
 * File tools over the confined file system. Each need is the request the
 * resource will make, on the same canonical path (made absolute against the
 * file system's base directory, `..` removed, every symbolic link resolved),
 * so the handler's capability allows exactly that one path and operation.
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
  const canonical = (p: string) => realPath(lexicalPath(p, files.baseDir));
  // Generic in the operation, so each tool's handler capability is typed to exactly its own operation.
  const need = <Op extends FsOp>(op: Op, p: string): { readonly action: `fs.${Op}`; readonly path: string } => ({ action: `fs.${op}`, path: canonical(p) });
  const on = (tenant: string | null) => (tenant === null ? {} : { tenant });
  return Object.freeze({
    read: defineTool(
      { name: options.names?.read ?? "read_file", description: "Read a text file.", input: readInput, needs: (i) => [need("read", i.path)] },
      async (i, cap, ctx) => ({ path: i.path, text: (await files.read(cap, i.path, on(ctx.tenant))).toString("utf8") }),
    ),
    write: defineTool(
      { name: options.names?.write ?? "write_file", description: "Create or replace a text file.", input: writeInput, needs: (i) => [need("write", i.path)] },
      async (i, cap, ctx) => {
        await files.write(cap, i.path, i.content, on(ctx.tenant));
        return { path: i.path, bytes: Buffer.byteLength(i.content) };
      },
    ),
    list: defineTool(
      { name: options.names?.list ?? "list_files", description: "List the entries of a directory.", input: listInput, needs: (i) => [need("list", i.path)] },
      async (i, cap, ctx) => ({ path: i.path, entries: await files.list(cap, i.path, on(ctx.tenant)) }),
    ),
  });
}
