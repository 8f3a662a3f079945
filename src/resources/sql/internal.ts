/** What agentcap's own higher layers use of the SQL resource beyond its entry: the row scope a chain confines a query to, and the requests a read will make. */
export { confinementOfLineage, fieldUse } from "./scope.js";
export { readRequests } from "./read-needs.js";
export { parseSchema } from "./schema.js";
