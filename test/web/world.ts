import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateCheckpointKey, memoryCheckpointSink, openAuditStore, type AuditStore } from "../../src/audit/index.ts";
import type { Grant } from "../../src/index.ts";
import { createTokenMint, createVerifier, generateKeyPair, openSqliteTokenStore, toToken, type TokenStore } from "../../src/token/index.ts";
import { createExplorer, listenExplorer, type ExplorerOptions, type ListeningExplorer } from "../../src/web/index.ts";
import { scenario } from "../audit/fixtures.ts";

/** The grants of the principals whose tokens the tests present. */
const GRANTS: Readonly<Record<string, Grant>> = {
  admin: { audit: ["read"], revoke: [{ target: "link" }, { target: "session" }, { target: "principal" }] },
  auditor: { audit: ["read"] },
  acme: { audit: ["read"], tenants: ["acme"] },
  multi: { audit: ["read"], tenants: ["acme", "globex"] },
  nogrant: { tools: ["search"] },
};

export interface ExplorerWorld {
  readonly audit: AuditStore;
  readonly tokens: TokenStore;
  readonly named: ReturnType<typeof scenario>["named"];
  readonly w: ReturnType<typeof scenario>["w"];
  readonly url: string;
  readonly origin: string;
  /** A token for one of GRANTS' principals. */
  token(principal: keyof typeof GRANTS): string;
  /** A token signed by a key the explorer does not know. */
  readonly foreignToken: string;
  close(): Promise<void>;
}

/**
 * An audit log holding the audit fixtures' scenario (Alice of tenant acme
 * with a session, Bob of globex and initech), a token store recording
 * revocations in it, and the explorer over both on 127.0.0.1.
 */
export async function explorerWorld(options: Partial<ExplorerOptions> & { pageDir?: string } = {}): Promise<ExplorerWorld> {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-explorer-"));
  const key = generateCheckpointKey("explorer-test/audit");
  const sink = memoryCheckpointSink();
  const audit = await openAuditStore({ kind: "sqlite", path: join(dir, "audit.db"), checkpoints: { key: key.signerKey, sink } });
  const tokens = openSqliteTokenStore(join(dir, "tokens.db"), { audit });
  const keys = generateKeyPair();
  const mint = createTokenMint({ issuer: "explorer-test", signingKey: keys.privateKey, keyId: 1, store: tokens, policy: (p) => GRANTS[p.id] ?? null });
  const verifier = createVerifier({ publicKeys: { "1": keys.publicKey }, store: tokens });
  const { w, named } = scenario();
  for (const [, event] of named) await audit.write(event);
  const foreignKeys = generateKeyPair();
  const foreignStore = openSqliteTokenStore(join(dir, "foreign.db"));
  const foreign = createTokenMint({ issuer: "elsewhere", signingKey: foreignKeys.privateKey, keyId: 1, store: foreignStore, policy: () => GRANTS.admin ?? null });
  const foreignToken = toToken(foreign.issue({ id: "admin" }));
  const explorer = createExplorer({
    audit,
    authenticate: (token) => Promise.resolve(verifier.verify(token)),
    revoke: (token, request) => tokens.revoke(request.target, { by: verifier.verify(token), reason: request.reason ?? "revoked from the explorer" }),
    revocations: () => tokens.list(),
    checkpoints: () => sink.read(),
    pollMs: 50,
    ...options,
  });
  const http: ListeningExplorer = await listenExplorer(explorer, { host: "127.0.0.1", port: 0 });
  return {
    audit,
    tokens,
    named,
    w,
    url: http.url,
    origin: new URL(http.url).origin,
    token: (principal) => toToken(mint.issue({ id: principal, tenants: principal === "acme" ? ["acme"] : [] })),
    foreignToken,
    close: async () => {
      await http.close();
      await tokens.close();
      await foreignStore.close();
      await audit.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A page directory holding a minimal index.html and one asset, standing in for the built page. */
export function fakePage(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-page-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), "<!doctype html><title>explorer</title>");
  writeFileSync(join(dir, "assets", "app.js"), "export {};");
  return { dir, remove: () => { rmSync(dir, { recursive: true, force: true }); } };
}
