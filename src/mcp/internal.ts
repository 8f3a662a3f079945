/** What agentcap's own higher layers (the command line) use of the gateway beyond its entry: its stores, opened as the gateway opens them. */
export { configuredPublicKeys, configuredSigningKey, openAudit, openCredentialVault, openTokenStore } from "./gateway.js";
export { configuredPolicy } from "./policy.js";
export { openConfiguredExplorer, tokenStoreExplorer } from "./explorer.js";
export type { ConfiguredExplorer, TokenStoreExplorerOptions } from "./explorer.js";
