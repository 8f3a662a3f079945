/** What agentcap's own higher layers use of the tools layer beyond its entry: the tenant a call acts for. */
export { tenantFor } from "./plan.js";
