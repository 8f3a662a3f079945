import { z } from "zod";
import type { Capability } from "../../kernel/index.js";
import { lineageReaches, resolvedRun, writtenRun } from "../../resources/exec/internal.js";
import type { Exec, ExecReach, ExecResult } from "../../resources/exec/index.js";
import { defineBuiltinTool, type Tool } from "../define.js";
import { defined } from "../../kernel/internal.js";

const input = z.object({
  argv: z
    .array(z.string())
    .min(1)
    // Checked before needs resolves anything: a relative program would be resolved against the process's own directory.
    .refine((argv) => argv[0]?.startsWith("/") === true, { message: "the program must be an absolute path; there is no PATH search", path: [0] })
    .describe("The program's absolute path, then its arguments. There is no shell: no pipes, globs or variables."),
  cwd: z.string().startsWith("/").describe("Absolute path of the working directory."),
  env: z.array(z.string()).optional().describe("Names of environment variables to pass on; their values are the application's."),
  stdin: z.string().optional().describe("Text written to the program's standard input."),
});

/** Options of the command tool. */
export interface CommandToolOptions {
  /** Default "run_command". */
  readonly name?: string;
}

/**
 * A tool that runs one program through the confined subprocess resource.
 * Its needs are the exec request and the listing of the working directory
 * as the caller wrote them, and, where they differ, on real paths (symlinks
 * resolved as the resource resolves them), so the handler's capability
 * allows exactly this argv in this directory. Paths are resolved only where
 * the caller's grants reach: a run the caller cannot have is declared as
 * written and denied before anything is looked at.
 */
export function commandTool(exec: Exec, options: CommandToolOptions = {}): Tool<z.input<typeof input>, ExecResult> {
  return defineBuiltinTool(
    {
      name: options.name ?? "run_command",
      description: "Run one program with arguments, without a shell, and return its exit code, stdout and stderr.",
      input,
      needs: ({ argv, cwd, env }, ctx) => {
        const written = writtenRun({ argv, cwd, env: [...new Set(env ?? [])] });
        const needs = [written.exec, written.list];
        if (!needs.every((need) => lineageReaches(ctx.lineage, need))) return needs;
        const resolved = resolvedRun(written, (need) => (lineageReaches(ctx.lineage, need) ? null : { need }));
        // A real path the caller cannot have is left to the resource, which denies it in the caller's words.
        if (!("exec" in resolved) || !lineageReaches(ctx.lineage, resolved.exec) || !lineageReaches(ctx.lineage, resolved.list)) return needs;
        return [
          ...needs,
          ...(resolved.exec.argv[0] === written.exec.argv[0] && resolved.list.path === written.list.path ? [] : [resolved.exec]),
          ...(resolved.list.path === written.list.path ? [] : [resolved.list]),
        ];
      },
    },
    (call, cap, ctx) =>
      exec.run(cap as Capability<ExecReach>, call.argv, {
        cwd: call.cwd,
        ...defined({ env: call.env, input: call.stdin }),
        ...(ctx.tenant === null ? {} : { tenant: ctx.tenant }),
      }),
  );
}
