import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createLocalJWKSet, jwtVerify, type JWK } from "jose";
import Provider, { errors as oidcErrors, type KoaContextWithOIDC } from "oidc-provider";
import { clientCredentialsToken } from "./idp.ts";

/*
 * An authorization server that exchanges tokens (RFC 8693), for the tests of
 * the gateway's exchanged credentials: oidc-provider on 127.0.0.1 issues
 * users client-credentials access tokens for the gateway, and gives the
 * gateway's own clients (and no one else) access tokens for other resources
 * in exchange for them. Which resources, what the exchanged tokens carry,
 * and whether an exchange is refused or slow is each test's policy.
 */

export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token";

/** A client of the gateway's: authenticated by its secret, or by a key (private_key_jwt, ES256) whose public JWK carries its kid. */
export type GatewayClient = { readonly id: string; readonly secret: string } | { readonly id: string; readonly publicKey: JWK };

/** What the provider exchanges, decided by the test. */
export interface ExchangePolicy {
  /** Resources a token may be exchanged for; asked at each exchange, as the test's servers start after the provider. */
  resources(): readonly string[];
  /** The scope of an exchanged token. */
  readonly scope: string;
  /** Lifetime of an exchanged token, in seconds; asked at each exchange. */
  ttlSeconds(): number;
  /** Whether an exchanged token names the gateway's client as its actor (`act`). */
  readonly act: boolean;
  /** Asked once the client is known to be the gateway's, before the subject token is read: throws an oidc-provider error to refuse, or waits. */
  before?(params: Readonly<Record<string, string | undefined>>): Promise<void> | void;
  /** Told of each token issued in an exchange. */
  made?(exchange: { readonly sub: string; readonly resource: string; readonly token: string }): void;
}

export interface ExchangeProviderOptions {
  readonly keys: JWK[];
  /** Users' client ids and secrets (client credentials). */
  readonly users: Readonly<Record<string, string>>;
  /** The gateway's resource URI: the audience of users' tokens, and of every subject token an exchange accepts. */
  readonly gatewayResource: string;
  /** The scope of users' tokens. */
  readonly userScope: string;
  /** Lifetime of a user's token, in seconds, by its client id. */
  readonly userTokenSeconds?: (user: string) => number;
  readonly gateways: readonly GatewayClient[];
  readonly policy: ExchangePolicy;
}

export interface ExchangeProvider {
  readonly issuer: string;
  /** A client-credentials access token of `user` for the gateway. */
  userToken(user: string): Promise<string>;
  close(): Promise<void>;
}

/** The public half of signing keys, for verifying what the provider signed. */
export function publicKeySet(keys: readonly JWK[]): ReturnType<typeof createLocalJWKSet> {
  return createLocalJWKSet({ keys: keys.map(({ kty, crv, x, y, kid, alg }) => ({ kty, crv, x, y, kid, alg }) as JWK) });
}

/** The subject of the bearer token on `req` when the provider issued it for `audience`, with the token and its audience; else null. */
export async function bearerOf(req: IncomingMessage, keys: readonly JWK[], issuer: string, audience: string): Promise<{ sub: string; aud: unknown; token: string } | null> {
  const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
  if (token === undefined) return null;
  try {
    const { payload } = await jwtVerify(token, publicKeySet(keys), { issuer, audience });
    return { sub: String(payload.sub), aud: payload.aud, token };
  } catch {
    return null;
  }
}

const signed = { alg: "ES256" } as const;

/** Starts the provider on a free port of 127.0.0.1. */
export async function startExchangeProvider(options: ExchangeProviderOptions): Promise<ExchangeProvider> {
  const { keys, users, gatewayResource, userScope, gateways, policy } = options;
  const userSeconds = options.userTokenSeconds ?? (() => 300);
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gatewayIds = new Set(gateways.map((g) => g.id));
  const exchanged = (resource: string) => ({ scope: policy.scope, audience: resource, accessTokenTTL: policy.ttlSeconds(), accessTokenFormat: "jwt" as const, jwt: { sign: signed } });
  const provider = new Provider(issuer, {
    clients: [
      ...Object.entries(users).map(([client_id, client_secret]) => ({
        client_id,
        client_secret,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: "client_secret_basic" as const,
        id_token_signed_response_alg: "ES256" as const,
      })),
      ...gateways.map((g) => ({
        client_id: g.id,
        grant_types: [TOKEN_EXCHANGE],
        redirect_uris: [],
        response_types: [],
        id_token_signed_response_alg: "ES256" as const,
        ...("secret" in g
          ? { client_secret: g.secret, token_endpoint_auth_method: "client_secret_basic" as const }
          : { token_endpoint_auth_method: "private_key_jwt" as const, token_endpoint_auth_signing_alg: "ES256" as const, jwks: { keys: [g.publicKey] } }),
      })),
    ],
    jwks: { keys },
    scopes: [...new Set([userScope, policy.scope])],
    cookies: { keys: ["test-cookie-key"] },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        getResourceServerInfo: (_ctx, resource, client) => ({ scope: userScope, audience: resource, accessTokenTTL: userSeconds(client.clientId), accessTokenFormat: "jwt", jwt: { sign: signed } }),
      },
    },
  });
  const verifyKeys = publicKeySet(keys);
  // The provider's token-exchange grant, run by oidc-provider's token endpoint after it authenticated the client.
  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async (ctx: KoaContextWithOIDC) => {
      const params = ctx.oidc.params as Record<string, string | undefined>;
      const client = ctx.oidc.client;
      if (client === undefined || !gatewayIds.has(client.clientId)) throw new oidcErrors.UnauthorizedClient("only the gateway may exchange tokens");
      if (params.subject_token_type !== ACCESS_TOKEN || params.requested_token_type !== ACCESS_TOKEN) throw new oidcErrors.InvalidRequest("only access tokens are exchanged");
      await policy.before?.(params);
      let sub: string;
      try {
        const { payload } = await jwtVerify(params.subject_token ?? "", verifyKeys, { issuer, audience: gatewayResource });
        sub = String(payload.sub);
      } catch {
        throw new oidcErrors.InvalidGrant("the subject token is not one this provider issued for the gateway");
      }
      const resource = params.resource ?? "";
      if (!policy.resources().includes(resource)) throw new oidcErrors.InvalidTarget("no such resource");
      // A grant of its own for what is issued, as the provider's built-in grants make.
      const grant = new provider.Grant({ accountId: sub, clientId: client.clientId });
      grant.addResourceScope(resource, policy.scope);
      const grantId = await grant.save();
      const token = new provider.AccessToken({
        accountId: sub,
        client,
        grantId,
        gty: "token-exchange",
        scope: policy.scope,
        ...(policy.act ? { extra: { act: { sub: client.clientId } } } : {}),
      });
      token.resourceServer = new provider.ResourceServer(resource, exchanged(resource));
      const value = await token.save();
      policy.made?.({ sub, resource, token: value });
      ctx.body = { access_token: value, issued_token_type: ACCESS_TOKEN, token_type: "Bearer", expires_in: token.expiration };
    },
    ["subject_token", "subject_token_type", "requested_token_type", "resource", "audience", "scope"],
  );
  const handle = provider.callback();
  server.on("request", (req, res) => {
    void handle(req, res);
  });
  return {
    issuer,
    userToken: (user) => clientCredentialsToken(issuer, user, users[user] ?? "", gatewayResource, userScope),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
    },
  };
}
