/** What agentcap's own higher layers use of the sandbox layer beyond its entry: the acting methods of resources, as tool code is endowed with them. */
export { actingMethods } from "./builtin.js";
