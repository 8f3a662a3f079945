/**
 * A gateway's stores, named by its configuration file, for the commands
 * that act on them with `--config` (`token`, `revoke`, `reinstate`, `audit`):
 * the same token store and audit log `agentcap serve` opens with that file,
 * so a revocation made here is refused by the running gateway at its next
 * decision, and a query reads the events it wrote.
 */
import { userInfo } from "node:os";
import type { AuditStore } from "../audit/index.js";
import { parseSignerKey } from "../audit/internal.js";
import { createMint, REVOCATION_TARGETS, type Capability } from "../kernel/index.js";
import { loadGatewayConfig, type GatewayConfig } from "../mcp/index.js";
import { openAudit, openTokenStore } from "../mcp/internal.js";
import type { TokenStore } from "../token/index.js";
import { readInputFile } from "./files.js";

/** A gateway's token store, opened with its audit log so each revocation is recorded there; and how to close both. */
export interface GatewayTokenStore {
  readonly config: GatewayConfig;
  readonly store: TokenStore;
  readonly close: () => Promise<void>;
}

/** Opens the token store (and audit log) the gateway configuration in `file` names. */
export async function openGatewayTokenStore(file: string): Promise<GatewayTokenStore> {
  const config = await loadGatewayConfig(file);
  const audit = await openAudit(config.audit, config.issuer);
  try {
    const store = await openTokenStore(config.tokenStore, audit);
    return {
      config,
      store,
      close: async () => {
        await store.close();
        await audit.close();
      },
    };
  } catch (e) {
    await audit.close();
    throw e;
  }
}

/**
 * The operator revoking from the command line, as a gateway's audit log
 * names them (`name`, by default cli:<user name>): a capability with an
 * explicit revoke grant of every kind, minted for that name in this process.
 */
export function operator(store: TokenStore, name: string | undefined): Capability {
  return createMint({ issuer: "agentcap-cli", policy: () => ({ revoke: REVOCATION_TARGETS.map((t) => ({ target: t })) }), revocations: store }).issue({ id: name ?? `cli:${userInfo().username}` });
}

/** The audit log of the gateway configuration in `file`, opened for writing with its checkpoint key, sink and stream, as `agentcap serve` opens it. */
export async function openGatewayAuditLog(file: string): Promise<AuditStore> {
  const config = await loadGatewayConfig(file);
  return openAudit(config.audit, config.issuer);
}

/** Where a gateway's audit log is, in the terms of the `audit` commands' own options. */
export interface GatewayAuditLog {
  readonly store?: string;
  readonly databaseUrl?: string;
  readonly schema?: string;
  /** The log's checkpoint file and the key its checkpoints verify with, when the gateway signs checkpoints. */
  readonly checkpoints?: { readonly file: string; readonly publicKey: string };
}

/** The audit log the gateway configuration in `file` names, with its checkpoint file and verifier key. */
export async function gatewayAuditLog(file: string): Promise<GatewayAuditLog> {
  const { audit } = await loadGatewayConfig(file);
  const where = audit.kind === "sqlite" ? { store: audit.path } : { databaseUrl: audit.url, ...(audit.schema === undefined ? {} : { schema: audit.schema }) };
  const c = audit.checkpoints;
  if (c === undefined) return where;
  const signer = readInputFile(c.keyFile, "the audit checkpoint key file").trim();
  return { ...where, checkpoints: { file: c.file, publicKey: parseSignerKey(signer).verifierKey } };
}
