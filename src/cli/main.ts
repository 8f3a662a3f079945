/**
 * The `agentcap` command: one commander program with a group per layer.
 * Typed agentcap errors are printed as one line with their code and exit 1;
 * anything else is a bug and keeps its stack trace.
 */
import { Command } from "commander";
import { AgentcapError } from "../kernel/index.js";
import { registerAuditCommand } from "./audit-command.js";
import { registerExploreCommand } from "./explore-command.js";
import { registerRevokeCommand } from "./revoke-command.js";
import { registerServeCommand } from "./serve-command.js";
import { registerTokenCommand } from "./token-command.js";

/** The whole command tree, ready to parse. */
export function createProgram(): Command {
  const program = new Command("agentcap").description("capability-secure tools for AI agents").showHelpAfterError();
  registerTokenCommand(program);
  registerExploreCommand(registerAuditCommand(program));
  registerServeCommand(program);
  registerRevokeCommand(program);
  return program;
}

/** Runs the command line `argv` (as in process.argv) and settles the exit code. */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await createProgram().parseAsync([...argv]);
  } catch (e) {
    if (!(e instanceof AgentcapError)) throw e;
    process.stderr.write(`agentcap: ${e.message} (${e.code})\n`);
    process.exitCode = 1;
  }
}
