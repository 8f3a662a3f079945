/**
 * One MCP session bound to one capability: an SDK server whose `tools/list`
 * is the dispatcher's catalog for that capability and whose `tools/call`
 * goes through the dispatcher with it. The capability lives in this closure
 * only; nothing the client or the model receives contains it or its token.
 */
import { callerMessage, type Capability } from "../kernel/index.js";
import { deadDenial } from "../kernel/internal.js";
import { approvalWaiter } from "./approval-wait.js";
import type { CallLimiter } from "./call-limit.js";
import { resultText } from "../tools/internal.js";
import type { Gateway, GatewayTool } from "./gateway.js";
import { AjvJsonSchemaValidator, CallToolRequestSchema, ListToolsRequestSchema, McpServer, type CallToolResult, type McpTool } from "./sdk.js";

/** The text a refused or failed call returns to the client: the error's stable code and the caller's words for it. */
export function errorResult(e: unknown): CallToolResult {
  const { code, text } = callerMessage(e);
  return { isError: true, content: [{ type: "text", text: `${code}: ${text}` }] };
}

/** A result from a built-in tool as MCP content: JSON text, and the object itself as structured content when it is one. */
function toolResult(value: unknown): CallToolResult {
  // A tool that returns nothing says so; the text is the one the dispatcher made when it sized the result.
  const text = resultText(value) ?? "null";
  const structured = typeof value === "object" && value !== null && !Array.isArray(value) ? { structuredContent: value as Record<string, unknown> } : {};
  return { content: [{ type: "text", text }], ...structured };
}

/** One session's MCP server, and what stops it watching for changes to its tools. */
export interface SessionServer {
  readonly mcp: McpServer;
  /** Stops watching the gateway's tools for the session; call it when the session ends. */
  readonly dispose: () => void;
  /** Looks whether the session's tools changed, and tells its client if they did (for changes the session cannot see itself, such as a revocation). */
  readonly recheck: () => void;
}

/*
 * SDK servers validate elicitation answers with a JSON Schema validator,
 * which costs each one an Ajv instance (time and memory per session); one
 * shared instance does for every session of the process.
 */
const validator = new AjvJsonSchemaValidator();

/**
 * An MCP server for one session under `capability`, which the gateway has
 * put behind a caretaker link `{ session: id }` of its own, so every event of
 * the session is filed under the id the gateway gave it and no token can
 * claim another. Refusals (denied, revoked, expired, bad input)
 * are tool results with `isError`, so the model can read why and the session
 * keeps serving. Calls run through `options.limit`, the gateway's bound on
 * calls at once, when given.
 *
 * The server advertises `tools.listChanged` and sends
 * `notifications/tools/list_changed` when the tools the session reaches
 * differ from those its client was last shown: after a call that spent the
 * last of a use count or budget (it leaves no tool reachable), when an
 * upstream's tool list changed, and when the owner calls `recheck` (the
 * stdio session does when its token is revoked or expires). A client that
 * never listed the tools is not told.
 */
export function sessionServer(gateway: Gateway, capability: Capability, options: { readonly limit?: CallLimiter } = {}): SessionServer {
  const limit = options.limit ?? ((call) => call());
  const mcp = new McpServer({ name: "agentcap", version: "0.1.0" }, { jsonSchemaValidator: validator });
  // The low-level handlers, not registerTool: tool schemas here are JSON schemas already, and the list differs per capability.
  const server = mcp.server;
  server.registerCapabilities({ tools: { listChanged: true } });
  /** What the client was last shown (names and revisions), or null before it listed the tools. */
  let shown: string | null = null;
  const keyOf = (tools: readonly GatewayTool[]) => tools.map((t) => `${t.name}#${t.revision}`).join(" ");
  const recheck = () => {
    if (shown === null) return;
    const now = keyOf(gateway.catalog(capability));
    if (now === shown) return;
    shown = now;
    // A session whose transport is gone has no one to tell.
    server.sendToolListChanged().catch(() => undefined);
  };
  server.setRequestHandler(ListToolsRequestSchema, async () => {
    // Upstreams listed per caller are listed for this one first, with its own credential.
    await gateway.prepareCatalog(capability);
    const tools = gateway.catalog(capability);
    shown = keyOf(tools);
    return { tools: tools.map((entry): McpTool => ({ name: entry.name, description: entry.description, inputSchema: entry.inputSchema as McpTool["inputSchema"] })) };
  });
  const run = async (name: string, args: Record<string, unknown>, approval?: Parameters<typeof gateway.dispatcher.call>[3]): Promise<CallToolResult> => {
    try {
      const result = await limit(() => gateway.dispatcher.call(name, args, capability, approval));
      return gateway.passthrough.has(name) ? (result as CallToolResult) : toolResult(result);
    } catch (e) {
      return errorResult(e);
    } finally {
      // Only a call that left the capability with nothing (its last use or budget spent) can have changed what it reaches.
      if (deadDenial(capability) !== null) recheck();
    }
  };
  const approvals = gateway.approvals === null ? null : approvalWaiter(server, gateway.config.approvals?.holdSeconds ?? 0);
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const { name, arguments: args } = request.params;
    return approvals === null ? run(name, args ?? {}) : approvals.call(name, args ?? {}, (options) => run(name, args ?? {}, options));
  });
  const stopWatching = gateway.onToolsChanged(recheck);
  const dispose = () => {
    stopWatching();
    approvals?.close();
  };
  return { mcp, dispose, recheck };
}
