/**
 * `agentcap/http`: the confined HTTP client. Every hop is WHATWG-parsed,
 * resolved, authorized on the address it will connect to, and connected to
 * that address only; redirects are followed by agentcap, each authorized again.
 */
export { createHttpClient } from "./client.ts";
export type { HttpClient, HttpResponse } from "./client.ts";
export type { HttpClientOptions, HttpInit } from "./options.ts";
export { systemResolver } from "./resolve.ts";
export type { Resolver } from "./resolve.ts";
