/**
 * `agentcap/mcp`: the MCP gateway. Sessions bound to bearer tokens, tools
 * listed and called per capability through the dispatcher, upstream MCP
 * servers guarded; served over Streamable HTTP or stdio.
 */
export { loadGatewayConfig, parseGatewayConfig } from "./config.js";
export type { ApprovalsConfig, ArgumentKind, AuditConfig, CheckpointConfig, CredentialsConfig, GatewayConfig, HttpLimits, SessionLimits, StoreConfig, UpstreamConfig } from "./config.js";
export { openGateway } from "./gateway.js";
export type { Gateway, OpenGatewayOptions } from "./gateway.js";
export { listenHttp } from "./http.js";
export type { HttpGateway, HttpGatewayOptions } from "./http.js";
export { serveStdio } from "./stdio.js";
export { guardUpstream, upstreamTransport } from "./upstream.js";
export type { GuardedUpstream, GuardOptions } from "./upstream.js";
