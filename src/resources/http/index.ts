/**
 * `agentcap/http`: the confined HTTP client. Every hop is WHATWG-parsed,
 * resolved, authorized on the address it will connect to, and connected to
 * that address only; redirects are followed by agentcap, each authorized again.
 */
export { createHttpClient } from "./client.js";
export type { HttpClient, HttpResponse } from "./client.js";
export type { HttpClientOptions, HttpInit } from "./options.js";
export { systemResolver } from "./resolve.js";
export type { Resolver } from "./resolve.js";
