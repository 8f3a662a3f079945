/**
 * `agentcap/mcp`: the MCP gateway. Sessions bound to bearer tokens, tools
 * listed and called per capability through the dispatcher, upstream MCP
 * servers guarded; served over Streamable HTTP or stdio.
 */
export { loadGatewayConfig, parseGatewayConfig } from "./config.ts";
export type { ArgumentKind, AuditConfig, GatewayConfig, StoreConfig, UpstreamConfig } from "./config.ts";
export { openGateway } from "./gateway.ts";
export type { Gateway, OpenGatewayOptions } from "./gateway.ts";
export { listenHttp } from "./http.ts";
export type { HttpGateway } from "./http.ts";
export { serveStdio } from "./stdio.ts";
export { guardUpstream, upstreamTransport } from "./upstream.ts";
export type { GuardedUpstream } from "./upstream.ts";
