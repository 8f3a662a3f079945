/**
 * `agentcap approvals list | show | approve | deny`: approval requests of a
 * gateway, from its `--config`. They live in the gateway's token store
 * database, so this process sees and settles calls that a gateway process
 * (any of them, sharing the store) holds. An approver proves who they are
 * with their own token (`--token`, or `--token @file`), verified as the gateway verifies
 * tokens; each step is recorded in the gateway's audit log.
 */
import { Command } from "commander";
import { InvalidInput, type Approvals, type ApprovalView } from "../kernel/index.js";
import { loadGatewayConfig, openGateway, type Gateway } from "../mcp/index.js";
import { tokenArg } from "./token-command.js";

/** Where the commands write; the default is the process's standard output. */
export interface ApprovalsCommandIo {
  readonly out: (line: string) => void;
}

/** The gateway's stores and approval flow, without its tools or upstreams (nothing is served from here). */
async function openApprovals(file: string): Promise<{ readonly gateway: Gateway; readonly approvals: Approvals }> {
  const config = await loadGatewayConfig(file);
  if (config.approvals === undefined) throw new InvalidInput(`gateway configuration ${file} has no approvals section; add "approvals": {} to let its calls wait for approvers`);
  const gateway = await openGateway({ ...config, tools: {}, upstreams: [] });
  return { gateway, approvals: gateway.approvals as Approvals };
}

async function withApprovals<T>(file: string, act: (a: { readonly gateway: Gateway; readonly approvals: Approvals }) => Promise<T>): Promise<T> {
  const opened = await openApprovals(file);
  try {
    return await act(opened);
  } finally {
    await opened.gateway.close();
  }
}

function approverToken(value: string): string {
  const token = tokenArg(value);
  if (token.length === 0) throw new InvalidInput(`--token ${value} holds no token`);
  return token;
}

/** One line per request: what a person scanning the list needs to pick one. */
function line(v: ApprovalView): string {
  const quorum = v.requirements.map((r) => `${r.quorum} of ${r.approvers.join("|")}`).join(" and ");
  return [v.id, v.status, v.caller.principal, v.tool ?? v.request.action, `args ${v.argsHash ?? "none"}`, `needs ${quorum}`, `approved by ${v.approvals.map((a) => a.principal).join(",") || "nobody"}`, `until ${new Date(v.expiresAt).toISOString()}`].join("  ");
}

/** Registers the `approvals` group on `program`. */
export function registerApprovalsCommand(program: Command, io: ApprovalsCommandIo = { out: (l) => process.stdout.write(`${l}\n`) }): void {
  const group = program.command("approvals").description("list, show, approve and deny calls waiting for human approval in a gateway's store");
  group
    .command("list")
    .description("the requests waiting for approvers, newest first")
    .requiredOption("--config <file>", "the gateway configuration whose approval requests to list")
    .option("--all", "every request kept, settled ones too")
    .option("--json", "one JSON object per line: exactly what approvers see")
    .action(async (o: { config: string; all?: boolean; json?: boolean }) => {
      await withApprovals(o.config, async ({ approvals }) => {
        for (const v of await approvals.list({ all: o.all === true })) io.out(o.json === true ? JSON.stringify(v) : line(v));
      });
    });
  group
    .command("show")
    .description("one request, as JSON: caller, lineage, tool, canonical request, arguments and their hash, requirements, approvals")
    .argument("<id>", "the request's id")
    .requiredOption("--config <file>", "the gateway configuration")
    .action(async (id: string, o: { config: string }) => {
      await withApprovals(o.config, async ({ approvals }) => {
        io.out(JSON.stringify(await approvals.show(id), null, 2));
      });
    });
  for (const verb of ["approve", "deny"] as const) {
    const cmd = group
      .command(verb)
      .description(verb === "approve" ? "approve a request as the principal of your token; the call runs once every rule has its quorum" : "deny a request as the principal of your token; the call fails at once")
      .argument("<id>", "the request's id")
      .requiredOption("--config <file>", "the gateway configuration")
      .requiredOption("--token <token>", "your own token, or @file holding it: it says who approves");
    if (verb === "deny") cmd.option("--reason <text>", "why, told to the caller and recorded (at most 1000 characters)");
    cmd.action(async (id: string, o: { config: string; token: string; reason?: string }) => {
      const token = approverToken(o.token);
      await withApprovals(o.config, async ({ gateway, approvals }) => {
        const approver = await gateway.authenticate(token, { fresh: true });
        const view = verb === "approve" ? await approvals.approve(id, approver) : await approvals.deny(id, approver, o.reason);
        io.out(`${verb === "approve" ? "approved" : "denied"} by ${approver.mint.principal}: ${line(view)}`);
      });
    });
  }
}
