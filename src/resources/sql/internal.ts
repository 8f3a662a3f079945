/** What agentcap's own higher layers use of the SQL resource beyond its entry: the row scope a chain confines a query to. */
export { confinementOfLineage, fieldUse } from "./scope.js";
