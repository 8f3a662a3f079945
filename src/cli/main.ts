/**
 * The `agentcap` command: one commander program with a group per layer.
 * Typed agentcap errors are printed as one line with their code and exit 1;
 * anything else is a bug and keeps its stack trace. Error messages echo
 * what was typed, so they are printed with control characters escaped.
 */
import { Command } from "commander";
import { printable } from "../audit/internal.js";
import { AgentcapError } from "../kernel/index.js";
import { registerApprovalsCommand } from "./approvals-command.js";
import { registerAuditCommand } from "./audit-command.js";
import { registerCredentialsCommand } from "./credentials-command.js";
import { registerExploreCommand } from "./explore-command.js";
import { registerRevokeCommand } from "./revoke-command.js";
import { registerServeCommand } from "./serve-command.js";
import { registerTokenCommand } from "./token-command.js";

/** The most of one error message printed: a value of a megabyte echoed back helps nobody. */
const MAX_SHOWN = 4096;

/**
 * An error message as printed: control characters (escape sequences that
 * would drive the terminal) shown as `\u` escapes, line by line, and cut at
 * MAX_SHOWN characters; the messages echo whatever was typed.
 */
function shown(message: string): string {
  const cut = message.length > MAX_SHOWN ? `${message.slice(0, MAX_SHOWN)}… (${message.length - MAX_SHOWN} more characters)` : message;
  return cut.split("\n").map(printable).join("\n");
}

/** The whole command tree, ready to parse. */
export function createProgram(): Command {
  // Set before the commands are added, which inherit it.
  const program = new Command("agentcap")
    .description("capability-secure tools for AI agents")
    .showHelpAfterError()
    .configureOutput({ outputError: (message, write) => { write(shown(message)); } });
  registerTokenCommand(program);
  registerExploreCommand(registerAuditCommand(program));
  registerServeCommand(program);
  registerRevokeCommand(program);
  registerApprovalsCommand(program);
  registerCredentialsCommand(program);
  return program;
}

/** Runs the command line `argv` (as in process.argv) and settles the exit code. */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await createProgram().parseAsync([...argv]);
  } catch (e) {
    if (!(e instanceof AgentcapError)) throw e;
    process.stderr.write(`agentcap: ${shown(e.message).replaceAll("\n", " ")} (${e.code})\n`);
    process.exitCode = 1;
  }
}
