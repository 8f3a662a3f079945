/**
 * What agentcap's own higher layers use of the resources layer as a whole:
 * recording an access the way every resource does (record, then act), for
 * code that confines what another program will touch, such as the MCP
 * gateway's upstream guard.
 */
export { audited, jsonBytes } from "./audited.js";
export type { Access } from "./audited.js";
