/**
 * The gateway as an OAuth 2.1 resource server, as the MCP authorization spec
 * asks: an access token from the operator's identity provider (a JWT) is
 * verified with `jose` against the provider's published keys (JWKS), with
 * its issuer, audience (this gateway's resource URI, RFC 8707), expiry and
 * scopes checked; then the gateway's own mint issues the session's root
 * capability for the principal the token's claims name, through the
 * configured policy (see policy.ts `claimedPrincipal`), expiring when the
 * token does. The provider never grants anything itself: it says who the
 * caller is, and the gateway's policy says what that principal may do.
 *
 * This is the one module that loads `jose`, an optional peer, and only when a
 * JWT arrives at a gateway with `oauth` configured.
 */
import type * as Jose from "jose";
import { CapabilityDenied, createMint, Expired, InsufficientScope, InvalidToken, restrict, type Capability, type Mint, type RevocationList } from "../kernel/index.js";
import { importOptional } from "../kernel/internal.js";
import { mediaSubtype, type GatewayConfig, type OAuthConfig } from "./config.js";
import { claimedPrincipal, claimsPolicy } from "./policy.js";

/** True for a bearer value in JWS compact form (three base64url parts); Biscuit tokens have no dots. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token);
}

/** Verifies identity-provider access tokens and mints their sessions' capabilities. */
export interface AccessTokens {
  /** The id of the mint that issues these capabilities' roots: the gateway's resources must trust it. */
  readonly mintId: string;
  /**
   * The capability for the access token `token` presented to `resource`
   * (this gateway's resource URI). Rejects with InvalidToken (bad signature,
   * issuer, audience or claims, or keys that cannot be fetched), Expired,
   * InsufficientScope, CapabilityDenied (a principal the policy grants
   * nothing) or Revoked (a revoked principal).
   */
  authenticate(token: string, resource: string): Promise<Capability>;
}

/** How long a key or metadata fetch from the provider may take. */
const FETCH_TIMEOUT_MS = 5000;

/** Where the provider's metadata may be: OpenID Connect discovery, then RFC 8414 (path inserted after the well-known prefix). */
function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
  return [`${url.origin}${path}/.well-known/openid-configuration`, `${url.origin}/.well-known/oauth-authorization-server${path}`];
}

/** The provider's jwks_uri, from the first metadata document that names this issuer. */
async function discoverJwksUri(issuer: string): Promise<string> {
  const problems: string[] = [];
  for (const url of metadataUrls(issuer)) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: "error", headers: { accept: "application/json" } });
      if (!res.ok) {
        problems.push(`${url}: HTTP ${res.status}`);
        continue;
      }
      const meta = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
      // RFC 8414 §3.3: metadata naming another issuer must not be used.
      if (meta.issuer !== issuer) problems.push(`${url}: names issuer ${JSON.stringify(meta.issuer)}`);
      else if (typeof meta.jwks_uri !== "string") problems.push(`${url}: has no jwks_uri`);
      else return meta.jwks_uri;
    } catch (e) {
      problems.push(`${url}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  throw new InvalidToken(`access token cannot be verified: the identity provider's metadata was not found (${problems.join("; ")}); set oauth.jwksUri`);
}

/** A claim as a list of strings: a string of space-separated values, or an array of strings. */
function stringsOf(value: unknown): string[] {
  if (typeof value === "string") return value.split(" ").filter((v) => v !== "");
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string" && v !== "");
  return [];
}

/** The agentcap error for a token jose refused; the message is for the server's log only. */
function refusal(e: unknown): Error {
  const err = e as { code?: unknown; claim?: unknown; message?: unknown };
  const message = typeof err.message === "string" ? err.message : String(e);
  if (err.code === "ERR_JWT_EXPIRED") {
    return new Expired(`access token expired: ${message}`, { capabilityId: "", link: 0, linkId: "", rule: "exp", because: "the access token has expired" });
  }
  if (err.code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && (err.claim === "iss" || err.claim === "aud")) {
    return new InvalidToken(`access token was not issued for this resource: ${message}`);
  }
  return new InvalidToken(`access token refused: ${typeof err.code === "string" ? `${err.code}: ` : ""}${message}`);
}

/** Access tokens of the provider `config` names, minted for through `policy` by a mint of `issuer` bound to `revocations`. */
export function accessTokens(config: OAuthConfig, policy: GatewayConfig["policy"], issuer: string, revocations: RevocationList): AccessTokens {
  const mint: Mint<unknown> = createMint({ issuer, policy: claimsPolicy(policy), revocations });
  let keys: Promise<{ readonly jose: typeof Jose; readonly getKey: Jose.JWTVerifyGetKey }> | null = null;
  const keySet = () => {
    keys ??= (async () => {
      const jose = await importOptional<typeof Jose>("jose", "the gateway's identity-provider access tokens (oauth)");
      const uri = config.jwksUri ?? (await discoverJwksUri(config.issuer));
      return { jose, getKey: jose.createRemoteJWKSet(new URL(uri), { timeoutDuration: FETCH_TIMEOUT_MS }) };
    })();
    // A failed discovery is tried again with the next token, so a provider that was down is found once it is up.
    keys.catch(() => {
      keys = null;
    });
    return keys;
  };

  return Object.freeze({
    mintId: mint.id,
    authenticate: async (token: string, resource: string): Promise<Capability> => {
      const { jose, getKey } = await keySet();
      let payload: Jose.JWTPayload;
      let header: Jose.JWTHeaderParameters;
      try {
        ({ payload, protectedHeader: header } = await jose.jwtVerify(token, getKey, {
          issuer: config.issuer,
          audience: resource,
          algorithms: [...config.algorithms],
          clockTolerance: config.clockToleranceSeconds,
          requiredClaims: ["exp", config.claims.principal],
        }));
      } catch (e) {
        throw refusal(e);
      }
      // Checked once the signature is: an unsigned header says nothing. An ID token or another JWT of the provider's is refused here.
      // jose leaves typ as the header's JSON gave it: an array or an object is no type, and is refused, not thrown as a TypeError (500).
      if (config.tokenTypes !== null && (typeof header.typ !== "string" || !config.tokenTypes.includes(mediaSubtype(header.typ)))) {
        throw new InvalidToken(`access token is not of an accepted type: its typ is ${header.typ === undefined ? "not given" : JSON.stringify(header.typ)}, not ${config.tokenTypes.join(" or ")} (oauth.tokenTypes)`);
      }
      // `scope` is the standard claim (RFC 9068, space-separated); some providers send `scp` as a list.
      const granted = new Set([...stringsOf(payload.scope), ...stringsOf(payload.scp)]);
      const missing = config.scopes.filter((s) => !granted.has(s));
      if (missing.length > 0) throw new InsufficientScope(`access token of ${String(payload.sub)} lacks scope ${missing.join(" ")}`, config.scopes);
      const id = payload[config.claims.principal];
      if (typeof id !== "string" || id === "") throw new InvalidToken(`access token refused: claim ${config.claims.principal} must name the principal as a non-empty string`);
      const claimed = {
        roles: config.claims.roles === undefined ? [] : stringsOf(payload[config.claims.roles]),
        tenants: config.claims.tenants === undefined ? [] : stringsOf(payload[config.claims.tenants]),
      };
      const principal = claimedPrincipal(policy, id, claimed);
      if (principal === null) {
        throw new CapabilityDenied(`the gateway's policy grants nothing to principal ${id} of the identity provider: it is not listed and claims no role the policy defines`, {
          capabilityId: "",
          link: 0,
          linkId: "",
          rule: "policy",
          because: "the gateway's policy grants nothing to this principal",
        });
      }
      const root = mint.issue(principal, typeof payload.jti === "string" && payload.jti !== "" ? { requestId: payload.jti } : {});
      // The session's authority ends when the token does; `exp` is required above.
      return restrict(root, { expiresAt: (payload.exp as number) * 1000 });
    },
  });
}
