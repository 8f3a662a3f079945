/**
 * The one module that loads the MCP TypeScript SDK, an optional peer:
 * importing `agentcap/mcp` without it installed fails with a
 * MissingDependency naming the package, not a resolution error.
 */
import type * as ClientIndex from "@modelcontextprotocol/sdk/client/index.js";
import type * as ClientStdio from "@modelcontextprotocol/sdk/client/stdio.js";
import type * as ClientHttp from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type * as ServerMcp from "@modelcontextprotocol/sdk/server/mcp.js";
import type * as ServerStdio from "@modelcontextprotocol/sdk/server/stdio.js";
import type * as ServerHttp from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type * as Types from "@modelcontextprotocol/sdk/types.js";
import type * as ValidationAjv from "@modelcontextprotocol/sdk/validation/ajv";
import type { jsonSchemaValidator as JsonSchemaValidatorInstance } from "@modelcontextprotocol/sdk/validation";
import { importOptional } from "../kernel/internal.js";

const NEEDED_FOR = "agentcap/mcp (the MCP gateway)";
const [clientIndex, clientStdio, clientHttp, serverMcp, serverStdio, serverHttp, types, validationAjv] = await Promise.all([
  importOptional<typeof ClientIndex>("@modelcontextprotocol/sdk/client/index.js", NEEDED_FOR),
  importOptional<typeof ClientStdio>("@modelcontextprotocol/sdk/client/stdio.js", NEEDED_FOR),
  importOptional<typeof ClientHttp>("@modelcontextprotocol/sdk/client/streamableHttp.js", NEEDED_FOR),
  importOptional<typeof ServerMcp>("@modelcontextprotocol/sdk/server/mcp.js", NEEDED_FOR),
  importOptional<typeof ServerStdio>("@modelcontextprotocol/sdk/server/stdio.js", NEEDED_FOR),
  importOptional<typeof ServerHttp>("@modelcontextprotocol/sdk/server/streamableHttp.js", NEEDED_FOR),
  importOptional<typeof Types>("@modelcontextprotocol/sdk/types.js", NEEDED_FOR),
  importOptional<typeof ValidationAjv>("@modelcontextprotocol/sdk/validation/ajv", NEEDED_FOR),
]);

export const Client = clientIndex.Client;
export type Client = ClientIndex.Client;
export const { getDefaultEnvironment, StdioClientTransport } = clientStdio;
export const StreamableHTTPClientTransport = clientHttp.StreamableHTTPClientTransport;
export const McpServer = serverMcp.McpServer;
export type McpServer = ServerMcp.McpServer;
export const StdioServerTransport = serverStdio.StdioServerTransport;
export const StreamableHTTPServerTransport = serverHttp.StreamableHTTPServerTransport;
export type StreamableHTTPServerTransport = ServerHttp.StreamableHTTPServerTransport;
export const { CallToolRequestSchema, ListToolsRequestSchema } = types;
// Typed by the SDK's validator interface, not its Ajv class: the class's declarations name Ajv in a
// form a strict NodeNext consumer cannot compile with skipLibCheck off.
export const AjvJsonSchemaValidator: new () => JsonSchemaValidatorInstance = validationAjv.AjvJsonSchemaValidator;
export type { CallToolResult, Tool as McpTool } from "@modelcontextprotocol/sdk/types.js";
export type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
