/**
 * The audit explorer: a web page, and the JSON API it reads, over an audit
 * store. Readers need an `audit: ["read"]` grant (confined to tenants, they
 * see only those tenants' events); revoking from the page needs a `revoke`
 * grant, through the same token store revocations as the CLI.
 */
export { createExplorer, EXPLORE_PATH, timelineQuery } from "./explorer.js";
export type { Explorer, ExplorerOptions } from "./explorer.js";
export { listenExplorer } from "./listen.js";
export type { ListeningExplorer } from "./listen.js";
export { listenOn } from "./listening.js";
export type { ListenAddress } from "./listening.js";
export { readScope } from "./access.js";
export type { ReadScope } from "./access.js";
export type { ActivityChart, CallSummary, CapabilityDetail, ChartDimension, ChartSeries, CapabilityStatus, DelegationTree, IntegrityView, RevocationView, SessionView, TimelinePage, TreeNode } from "./views.js";
