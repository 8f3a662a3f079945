/** What agentcap's own higher layers use of the http resource beyond its entry: confining a URL that another program will fetch. */
export { authorizeUrl } from "./resolve.js";
