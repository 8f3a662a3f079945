/**
 * The gateway as an OAuth client of the identity provider, for one grant:
 * token exchange (RFC 8693). It sends a caller's access token (the subject
 * token) to the provider's token endpoint, authenticated as the gateway's
 * own client, and asks for an access token of one target (audience,
 * resource, scopes); the provider's policy decides what it issues. The
 * request, client authentication and response checks are `openid-client`'s
 * (its generic grant request); this is the one module that loads it, an
 * optional peer, and only when a first exchange is made.
 *
 * Nothing here echoes what the provider sent: a refusal becomes a
 * TokenExchangeFailed naming the target and the standard error code, never
 * the response body, its description or a token.
 */
import type * as OpenIdClient from "openid-client";
import { createPrivateKey, type JsonWebKey, type KeyObject, type webcrypto } from "node:crypto";
import { InvalidInput, TokenExchangeFailed } from "../kernel/index.js";
import { defined, importOptional, readBoundedText } from "../kernel/internal.js";
import type { ExchangeTarget, TokenExchangeConfig } from "./config.js";

/** RFC 8693 §3: the token types the gateway sends and asks for. */
const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";

/** The error codes a token endpoint may answer with (RFC 6749 §5.2, RFC 8693 §2.2.2, RFC 8707 §2): only these are repeated in a message. */
const OAUTH_ERRORS = new Set(["invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type", "invalid_scope", "invalid_target", "temporarily_unavailable", "server_error"]);

/** A token issued in exchange: the Authorization header value to send, and when it expires (ms since the epoch; null when the provider did not say). */
export interface ExchangedToken {
  readonly authorization: string;
  readonly expiresAt: number | null;
}

/** Exchanges subject tokens at the provider. */
export interface TokenExchanger {
  /**
   * A token for `target` in exchange for `subjectToken`, described in errors
   * as `what` (such as "upstream api"). Rejects with TokenExchangeFailed
   * ("refused" or "unavailable").
   */
  exchange(subjectToken: string, target: ExchangeTarget, what: string, now: number): Promise<ExchangedToken>;
}

/** The largest client secret or client key file read. */
const MAX_SECRET_BYTES = 8192;

/** How the gateway proves itself at the token endpoint: its client secret, or its private key for signed assertions (private_key_jwt). */
export type ExchangeClientCredential =
  | { readonly kind: "secret"; readonly secret: string }
  | { readonly kind: "key"; readonly key: webcrypto.CryptoKey; readonly keyId?: string };

/**
 * The gateway's client credential as the configuration names it: the secret
 * from its file or environment variable, or the private key from its file.
 * InvalidInput when it is not there or not usable.
 */
export function exchangeClientCredential(config: TokenExchangeConfig, env: NodeJS.ProcessEnv = process.env): ExchangeClientCredential {
  if (config.clientKey !== undefined) return { kind: "key", ...clientKey(config.clientKey.file), ...defined({ keyId: config.clientKey.keyId }) };
  const source = config.clientSecret;
  if (source === undefined) throw new InvalidInput("oauth.tokenExchange names neither a client secret nor a client key");
  const secret = "file" in source ? readBoundedText(source.file, MAX_SECRET_BYTES, "token exchange client secret").trim() : (env[source.fromEnv] ?? "").trim();
  if (secret === "") {
    throw new InvalidInput(
      "file" in source
        ? `the token exchange client secret file ${source.file} is empty; write the gateway's client secret at the identity provider into it`
        : `the environment variable ${source.fromEnv} (oauth.tokenExchange.clientSecretFromEnv) is not set; set it to the gateway's client secret at the identity provider`,
    );
  }
  return { kind: "secret", secret };
}

/** The signing algorithm of each kind of private key a client assertion may be signed with: RS256, ES256, EdDSA. */
function signingAlgorithm(key: KeyObject): webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams | webcrypto.Algorithm | null {
  switch (key.asymmetricKeyType) {
    case "rsa":
      return { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
    case "ec":
      return key.asymmetricKeyDetails?.namedCurve === "prime256v1" ? { name: "ECDSA", namedCurve: "P-256" } : null;
    case "ed25519":
      return { name: "Ed25519" };
    default:
      return null;
  }
}

/** The private key in `file` (PKCS#8 or another PEM private key, or a private JWK as JSON), ready to sign assertions; InvalidInput naming what is wrong, never the key. */
function clientKey(file: string): { readonly key: webcrypto.CryptoKey } {
  const text = readBoundedText(file, MAX_SECRET_BYTES, "token exchange client key").trim();
  let key: KeyObject;
  try {
    key = text.startsWith("{") ? createPrivateKey({ key: JSON.parse(text) as JsonWebKey, format: "jwk" }) : createPrivateKey(text);
  } catch {
    throw new InvalidInput(`the token exchange client key file ${file} holds no private key: write the gateway's private key into it, as PEM or as a private JWK`);
  }
  const algorithm = signingAlgorithm(key);
  if (algorithm === null) throw new InvalidInput(`the token exchange client key in ${file} is not an RSA, P-256 or Ed25519 key, which private_key_jwt signs with (RS256, ES256, EdDSA)`);
  return { key: key.toCryptoKey(algorithm, false, ["sign"]) };
}

/** Why a request to the provider failed, in words that hold nothing the provider sent. */
function failure(e: unknown, client: typeof OpenIdClient, what: string): TokenExchangeFailed {
  if (e instanceof TokenExchangeFailed) return e;
  if (e instanceof client.ResponseBodyError) {
    const code = OAUTH_ERRORS.has(e.error) ? e.error : null;
    return new TokenExchangeFailed(`the identity provider refused to exchange the caller's token for ${what} (${code ?? "an error it named"}, HTTP ${e.status})`, "refused", code);
  }
  // A transport failure or a response openid-client found malformed: its code says which, its message may quote the response.
  const code = (e as { code?: unknown } | null)?.code;
  const kind = typeof code === "string" && /^[A-Z0-9_]{1,64}$/.test(code) ? code : e instanceof Error && e.name === "TimeoutError" ? "timed out" : "no usable answer";
  return new TokenExchangeFailed(`the caller's token could not be exchanged for ${what}: the identity provider's token endpoint gave no usable answer (${kind})`, "unavailable");
}

/** True for an https URL, or http on a loopback address. */
function secure(url: URL): boolean {
  if (url.protocol === "https:") return true;
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return url.protocol === "http:" && (host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host));
}

/** An exchanger for the provider `issuer` names, authenticating as the configured client with `credential`. */
export function tokenExchanger(issuer: string, config: TokenExchangeConfig, credential: ExchangeClientCredential): TokenExchanger {
  let configured: Promise<{ readonly client: typeof OpenIdClient; readonly config: OpenIdClient.Configuration }> | null = null;
  const configuration = (what: string) => {
    configured ??= (async () => {
      const client = await importOptional<typeof OpenIdClient>("openid-client", "the gateway's token exchange (oauth.tokenExchange)");
      const auth =
        credential.kind === "key"
          ? client.PrivateKeyJwt(credential.keyId === undefined ? credential.key : { key: credential.key, kid: credential.keyId })
          : config.clientAuth === "client_secret_post"
            ? client.ClientSecretPost(credential.secret)
            : client.ClientSecretBasic(credential.secret);
      const endpoint = config.tokenEndpoint ?? null;
      let c: OpenIdClient.Configuration;
      try {
        // Plain http is allowed only where the configuration check allowed it: a provider on a loopback address.
        // eslint-disable-next-line @typescript-eslint/no-deprecated -- deprecated only to stand out; used for loopback providers alone
        const allowHttp: (c: OpenIdClient.Configuration) => void = client.allowInsecureRequests;
        const insecure = !new URL(endpoint ?? issuer).protocol.startsWith("https");
        if (endpoint !== null) {
          c = new client.Configuration({ issuer, token_endpoint: endpoint }, config.clientId, undefined, auth);
          if (insecure) allowHttp(c);
        } else {
          c = await client.discovery(new URL(issuer), config.clientId, undefined, auth, { timeout: config.timeoutSeconds, ...(insecure ? { execute: [allowHttp] } : {}) });
        }
      } catch (e) {
        throw failure(e, client, what);
      }
      const token = c.serverMetadata().token_endpoint;
      if (token === undefined || !secure(new URL(token))) {
        throw new TokenExchangeFailed(`the caller's token could not be exchanged for ${what}: the identity provider's metadata names no token endpoint, or one that is not https`, "unavailable");
      }
      c.timeout = config.timeoutSeconds;
      return { client, config: c };
    })();
    // A failed discovery is tried again at the next exchange, so a provider that was down is found once it is up.
    configured.catch(() => {
      configured = null;
    });
    return configured;
  };

  return Object.freeze({
    exchange: async (subjectToken: string, target: ExchangeTarget, what: string, now: number): Promise<ExchangedToken> => {
      const { client, config: c } = await configuration(what);
      const parameters: Record<string, string> = {
        subject_token: subjectToken,
        subject_token_type: ACCESS_TOKEN_TYPE,
        requested_token_type: ACCESS_TOKEN_TYPE,
        ...(target.audience === undefined ? {} : { audience: target.audience }),
        ...(target.resource === undefined ? {} : { resource: target.resource }),
        ...(target.scopes === undefined || target.scopes.length === 0 ? {} : { scope: target.scopes.join(" ") }),
      };
      let response: OpenIdClient.TokenEndpointResponse;
      try {
        response = await client.genericGrantRequest(c, TOKEN_EXCHANGE_GRANT, parameters);
      } catch (e) {
        throw failure(e, client, what);
      }
      // RFC 8693 §2.2.1: the provider says what it issued; only a bearer access token can be sent as the upstream's Authorization header.
      const issued = (response as { issued_token_type?: unknown }).issued_token_type;
      if ((issued !== undefined && issued !== ACCESS_TOKEN_TYPE) || response.token_type.toLowerCase() !== "bearer") {
        throw new TokenExchangeFailed(`the identity provider exchanged the caller's token for ${what}, but issued something other than a bearer access token`, "unavailable");
      }
      const expiresIn = response.expires_in;
      return Object.freeze({
        authorization: `Bearer ${response.access_token}`,
        expiresAt: typeof expiresIn === "number" && Number.isFinite(expiresIn) ? now + expiresIn * 1000 : null,
      });
    },
  });
}
