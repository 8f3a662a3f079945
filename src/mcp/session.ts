/**
 * One MCP session bound to one capability: an SDK server whose `tools/list`
 * is the dispatcher's catalog for that capability and whose `tools/call`
 * goes through the dispatcher with it. The capability lives in this closure
 * only; nothing the client or the model receives contains it or its token.
 */
import { callerMessage, type Capability } from "../kernel/index.js";
import type { CallLimiter } from "./call-limit.js";
import type { Gateway } from "./gateway.js";
import { CallToolRequestSchema, ListToolsRequestSchema, McpServer, type CallToolResult, type McpTool } from "./sdk.js";

/** The text a refused or failed call returns to the client: the error's stable code and the caller's words for it. */
export function errorResult(e: unknown): CallToolResult {
  const { code, text } = callerMessage(e);
  return { isError: true, content: [{ type: "text", text: `${code}: ${text}` }] };
}

/** A result from a built-in tool as MCP content: JSON text, and the object itself as structured content when it is one. */
function toolResult(value: unknown): CallToolResult {
  // JSON.stringify gives undefined for undefined; a tool that returns nothing says so.
  const text = value === undefined ? "null" : JSON.stringify(value);
  const structured = typeof value === "object" && value !== null && !Array.isArray(value) ? { structuredContent: value as Record<string, unknown> } : {};
  return { content: [{ type: "text", text }], ...structured };
}

/**
 * An MCP server for one session under `capability`, which the gateway has
 * put behind a caretaker link `{ session: id }` of its own, so every event of
 * the session is filed under the id the gateway gave it and no token can
 * claim another. Refusals (denied, revoked, expired, bad input)
 * are tool results with `isError`, so the model can read why and the session
 * keeps serving. Calls run through `options.limit`, the gateway's bound on
 * calls at once, when given.
 */
export function sessionServer(gateway: Gateway, capability: Capability, options: { readonly limit?: CallLimiter } = {}): McpServer {
  const limit = options.limit ?? ((call) => call());
  const mcp = new McpServer({ name: "agentcap", version: "0.1.0" });
  // The low-level handlers, not registerTool: tool schemas here are JSON schemas already, and the list differs per capability.
  const server = mcp.server;
  /*
   * Declared on the low-level server: McpServer, given a tools capability, installs handlers of its own that
   * claim listChanged. A session's tools never change while it lasts (revocation or expiry ends the session).
   */
  server.registerCapabilities({ tools: { listChanged: false } });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: gateway.dispatcher.catalog(capability).map(
      (entry): McpTool => ({ name: entry.name, description: entry.description, inputSchema: (gateway.displaySchemas.get(entry.name) ?? entry.inputSchema) as McpTool["inputSchema"] }),
    ),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (request) => {
    const { name, arguments: args } = request.params;
    try {
      const result = await limit(() => gateway.dispatcher.call(name, args ?? {}, capability));
      return gateway.passthrough.has(name) ? (result as CallToolResult) : toolResult(result);
    } catch (e) {
      return errorResult(e);
    }
  });
  return mcp;
}
