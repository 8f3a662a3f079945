import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider from "oidc-provider";

/*
 * A real OAuth 2.1 authorization server for the gateway's tests:
 * `oidc-provider` on 127.0.0.1, issuing JWT access tokens by the client
 * credentials grant, with the resource (RFC 8707) as their audience. Its
 * clients:
 * - ci-agent: a principal the gateway's policy lists;
 * - contractor: not listed, its tokens claim the role lister and tenant acme;
 * - intruder: not listed, claims no role;
 * - short: a listed principal whose tokens live one second.
 */

export const CLIENTS = {
  "ci-agent": "ci-agent-secret-0123456789",
  contractor: "contractor-secret-0123456789",
  intruder: "intruder-secret-0123456789",
  short: "short-secret-0123456789",
} as const;
export type ClientId = keyof typeof CLIENTS;

/** The scope the gateway's tests require. */
export const SCOPE = "mcp:tools";

export interface IdentityProvider {
  readonly issuer: string;
  /** A client-credentials access token for `resource`, with `scope` (none when empty). */
  token(client: ClientId, resource: string, scope?: string): Promise<string>;
  close(): Promise<void>;
}

/** Signing keys for a provider; two providers given the same keys sign alike under different issuer names. */
export async function signingKeys(): Promise<JWK[]> {
  const { privateKey } = await generateKeyPair("ES256", { extractable: true });
  return [{ ...(await exportJWK(privateKey)), kid: "test-key-1", alg: "ES256", use: "sig" }];
}

/** An access token from `issuer`'s token endpoint by the client credentials grant, for `resource`, with `scope` (none when empty). */
export async function clientCredentialsToken(issuer: string, client: string, secret: string, resource: string, scope: string): Promise<string> {
  const body = new URLSearchParams({ grant_type: "client_credentials", resource, ...(scope === "" ? {} : { scope }) });
  const res = await fetch(`${issuer}/token`, {
    method: "POST",
    headers: { authorization: `Basic ${Buffer.from(`${client}:${secret}`).toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  const json = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
  if (json.access_token === undefined) throw new Error(`token request failed: ${json.error ?? res.status} ${json.error_description ?? ""}`);
  return json.access_token;
}

/** Starts a provider on 127.0.0.1 (a free port) signing with `keys`. */
export async function startIdentityProvider(keys: JWK[]): Promise<IdentityProvider> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: Object.entries(CLIENTS).map(([client_id, client_secret]) => ({
      client_id,
      client_secret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256",
    })),
    jwks: { keys },
    scopes: [SCOPE],
    cookies: { keys: ["test-cookie-key"] },
    ttl: { ClientCredentials: (_ctx, token, client) => (client.clientId === "short" ? 1 : 300) },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: (_ctx, resourceIndicator, client) => ({
          scope: SCOPE,
          audience: resourceIndicator,
          accessTokenTTL: client.clientId === "short" ? 1 : 300,
          accessTokenFormat: "jwt",
          jwt: { sign: { alg: "ES256" } },
        }),
      },
    },
    extraTokenClaims: (ctx) => (ctx.oidc.client?.clientId === "contractor" ? { roles: ["lister", "no-such-role"], tenants: ["acme"] } : undefined),
  });
  const handle = provider.callback();
  server.on("request", (req, res) => {
    void handle(req, res);
  });
  return {
    issuer,
    token: (client, resource, scope = SCOPE) => clientCredentialsToken(issuer, client, CLIENTS[client], resource, scope),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
}
