import { z } from "zod";
import type { Capability } from "../../kernel/index.js";
import { resolveDirectory, resolveProgram } from "../../resources/exec/internal.js";
import type { Exec, ExecReach, ExecResult } from "../../resources/exec/index.js";
import { defineTool, type Tool } from "../define.js";
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
 * Its needs are the exec request and the listing of the working directory,
 * both on real paths (symlinks resolved as the resource resolves them), so
 * the handler's capability allows exactly this argv in this directory.
 */
export function commandTool(exec: Exec, options: CommandToolOptions = {}): Tool<z.input<typeof input>, ExecResult> {
  return defineTool(
    {
      name: options.name ?? "run_command",
      description: "Run one program with arguments, without a shell, and return its exit code, stdout and stderr.",
      input,
      needs: ({ argv, cwd, env }) => {
        const [program = "", ...args] = argv;
        const dir = resolveDirectory(cwd);
        return [
          { action: "exec", argv: [resolveProgram(program), ...args], cwd: dir, env: [...new Set(env ?? [])] },
          { action: "fs.list", path: dir },
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
