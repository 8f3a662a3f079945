/**
 * The audit explorer over a gateway's stores: as the gateway serves it
 * under /explore (its tokens verified as a session's are, revocations
 * recorded in its token store exactly as `/revoke` records them), or opened
 * from the gateway's configuration alone, beside it or after it stopped,
 * for `agentcap audit explore`.
 */
import { existsSync, readFileSync } from "node:fs";
import { splitNotes, type AuditStore } from "../audit/index.js";
import { InvalidInput } from "../kernel/index.js";
import { defined } from "../kernel/internal.js";
import { createVerifier } from "../token/index.js";
import { inspectVerified, publicKeyOf } from "../token/internal.js";
import { createExplorer, type Explorer } from "../web/index.js";
import type { CheckpointConfig, GatewayConfig } from "./config.js";
import { openAudit, openTokenStore, type Gateway } from "./gateway.js";

/** The signed checkpoints in the configured checkpoint file (none before the first is written). */
function checkpointReader(cp: CheckpointConfig | undefined): { readonly checkpoints?: () => Promise<readonly string[]> } {
  return defined({ checkpoints: cp === undefined ? undefined : () => Promise.resolve(existsSync(cp.file) ? splitNotes(readFileSync(cp.file, "utf8")) : []) });
}

/** The explorer over `gateway`; `log` takes the operator's lines. */
export function gatewayExplorer(gateway: Gateway, log: (line: string) => void): Explorer {
  return createExplorer({
    audit: gateway.audit,
    authenticate: (token) => gateway.authenticate(token),
    revoke: (token, request) => gateway.revoke(token, request),
    revocations: () => gateway.tokenStore.list(),
    log,
    ...checkpointReader(gateway.config.audit.checkpoints),
  });
}

/** The public keys a gateway of `config` verifies tokens with: those configured, and its key file's own. */
function publicKeysOf(config: GatewayConfig): Record<string, string> {
  const keys: Record<string, string> = { ...config.keys.publicKeys };
  const file = config.keys.file;
  if (file === undefined || !existsSync(file)) return keys;
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new InvalidInput(`key file ${file} cannot be read as JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const k = data as { keyId?: unknown; privateKey?: unknown } | null;
  if (typeof k?.keyId !== "number" || typeof k.privateKey !== "string") throw new InvalidInput(`key file ${file} must hold { "keyId": <number>, "privateKey": "ed25519-private/<hex>" }`);
  keys[String(k.keyId)] = publicKeyOf(k.privateKey);
  return keys;
}

/** An explorer opened from a gateway's configuration, and what closes its stores. */
export interface ConfiguredExplorer {
  readonly explorer: Explorer;
  readonly audit: AuditStore;
  close(): Promise<void>;
}

/**
 * Opens the audit log and token store `config` names, and the explorer over
 * them: tokens are verified with the gateway's keys against its store, and
 * revocations are recorded there (and in the log) as the gateway records them.
 */
export async function openConfiguredExplorer(config: GatewayConfig, log: (line: string) => void): Promise<ConfiguredExplorer> {
  const publicKeys = publicKeysOf(config);
  const audit = await openAudit(config.audit, config.issuer);
  try {
    const store = await openTokenStore(config.tokenStore, audit);
    const options = { publicKeys, store };
    const verifier = createVerifier(options);
    const verified = (token: string) => {
      inspectVerified(token, options);
      return verifier.verify(token);
    };
    const explorer = createExplorer({
      audit,
      authenticate: (token) => Promise.resolve(verified(token)),
      revoke: (token, request) => store.revoke(request.target, { by: verified(token), reason: request.reason ?? "revoked from the audit explorer" }),
      revocations: () => store.list(),
      log,
      ...checkpointReader(config.audit.checkpoints),
    });
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
