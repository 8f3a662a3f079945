/**
 * The audit explorer over a gateway's stores: as the gateway serves it
 * under /explore (its tokens verified as a session's are, revocations
 * recorded in its token store exactly as `/revoke` records them), or opened
 * from the gateway's configuration alone, beside it or after it stopped,
 * for `agentcap audit explore`.
 */
import { existsSync, readFileSync } from "node:fs";
import { splitNotes, type AuditStore } from "../audit/index.js";
import { defined } from "../kernel/internal.js";
import { createVerifier, type PublicKeySet, type TokenStore } from "../token/index.js";
import { inspectVerified } from "../token/internal.js";
import { createExplorer, type Explorer, type ExplorerOptions } from "../web/index.js";
import type { GatewayConfig } from "./config.js";
import { configuredPublicKeys, openAudit, openTokenStore, type Gateway } from "./gateway.js";

/** The signed checkpoints in a checkpoint file (none before the first is written). */
function checkpointReader(file: string | undefined): { readonly checkpoints?: () => Promise<readonly string[]> } {
  return defined({ checkpoints: file === undefined ? undefined : () => Promise.resolve(existsSync(file) ? splitNotes(readFileSync(file, "utf8")) : []) });
}

/** The explorer over `gateway`; `log` takes the operator's lines. */
export function gatewayExplorer(gateway: Gateway, log: (line: string) => void): Explorer {
  return createExplorer({
    audit: gateway.audit,
    authenticate: (token) => gateway.authenticate(token),
    revoke: (token, request) => gateway.revoke(token, request),
    revocations: () => gateway.tokenStore.list(),
    log,
    ...checkpointReader(gateway.config.audit.checkpoints?.file),
  });
}

/** An explorer opened from a gateway's configuration, and what closes its stores. */
export interface ConfiguredExplorer {
  readonly explorer: Explorer;
  readonly audit: AuditStore;
  close(): Promise<void>;
}

/** What an explorer over an audit log and a token store reads. */
export interface TokenStoreExplorerOptions {
  readonly audit: AuditStore;
  /** The keys of the tokens it accepts; a token must also have been minted under `store`. */
  readonly publicKeys: PublicKeySet;
  readonly store: TokenStore;
  /** Whether the page may revoke (recorded in `store`, which records into the log when it was opened with it). */
  readonly revoke: boolean;
  /** The log's checkpoint file, when it has one. */
  readonly checkpointFile?: string;
  readonly log: (line: string) => void;
}

/** The explorer over `options.audit`, for bearers of tokens signed by `publicKeys` and live in `store`. */
export function tokenStoreExplorer(options: TokenStoreExplorerOptions): Explorer {
  const { publicKeys, store } = options;
  const verifier = createVerifier({ publicKeys, store });
  const verified = (token: string) => {
    inspectVerified(token, { publicKeys, store });
    return verifier.verify(token);
  };
  return createExplorer({
    audit: options.audit,
    authenticate: (token) => Promise.resolve(verified(token)),
    ...(options.revoke ? { revoke: (token: string, request: Parameters<NonNullable<ExplorerOptions["revoke"]>>[1]) => store.revoke(request.target, { by: verified(token), reason: request.reason ?? "revoked from the audit explorer" }) } : {}),
    revocations: () => store.list(),
    log: options.log,
    ...checkpointReader(options.checkpointFile),
  });
}

/**
 * Opens the audit log and token store `config` names, and the explorer over
 * them: tokens are verified with the gateway's keys against its store, and
 * revocations are recorded there (and in the log) as the gateway records them.
 */
export async function openConfiguredExplorer(config: GatewayConfig, log: (line: string) => void): Promise<ConfiguredExplorer> {
  const publicKeys = configuredPublicKeys(config);
  const audit = await openAudit(config.audit, config.issuer);
  try {
    const store = await openTokenStore(config.tokenStore, audit);
    const explorer = tokenStoreExplorer({ audit, publicKeys, store, revoke: true, log, ...defined({ checkpointFile: config.audit.checkpoints?.file }) });
    return {
      explorer,
      audit,
      close: async () => {
        explorer.close();
        await store.close();
        await audit.close();
      },
    };
  } catch (e) {
    await audit.close();
    throw e;
  }
}
