/**
 * `agentcap revoke` and `agentcap reinstate`: the revocation list from the
 * command line. Acts on a gateway's own stores when given its `--config`
 * (and then records each revocation in its audit log, as the operator named
 * by `--by`), or on a token store given directly. Every process sharing the
 * store refuses what is revoked from its next decision.
 */
import { Command, InvalidArgumentError } from "commander";
import { InvalidInput } from "../kernel/index.js";
import { openGatewayTokenStore, operator } from "./gateway-stores.js";
import { openPostgresTokenStore, openSqliteTokenStore, type ReinstateTarget, type RevocationTarget, type TokenStore } from "../token/index.js";
import { printable } from "../audit/internal.js";
import { makeParentDirectory } from "./files.js";

/** Where the commands write; the default is the process's standard output. */
export interface RevokeCommandIo {
  readonly out: (line: string) => void;
}

const DEFAULT_STORE = ".agentcap/tokens.db";

interface StoreOptions {
  readonly config?: string;
  readonly store?: string;
  readonly databaseUrl?: string;
}

interface TargetOptions {
  readonly principal?: string;
  readonly tenant?: string;
  readonly role?: string;
  readonly session?: string;
  readonly capabilityId?: string;
  readonly revocationId?: string;
  readonly keyId?: number;
}

/** The one target the options name; InvalidInput for none or several. */
function targetOf(o: TargetOptions, allowed: readonly (keyof TargetOptions)[]): RevocationTarget {
  const given = allowed.filter((k) => o[k] !== undefined);
  const flags = allowed.map((k) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(", ");
  if (given.length !== 1) throw new InvalidInput(`name exactly one of ${flags}`);
  const key = given[0] as keyof TargetOptions;
  return { [key]: o[key] } as unknown as RevocationTarget;
}

/** The token store the options name, with the gateway's audit log when it is a gateway's; and how to close both. */
async function openStores(o: StoreOptions): Promise<{ readonly store: TokenStore; readonly audited: boolean; readonly close: () => Promise<void> }> {
  if (o.config !== undefined) {
    if (o.store !== undefined || o.databaseUrl !== undefined) throw new InvalidInput("--config names the gateway's stores; leave out --store and --database-url");
    const { store, close } = await openGatewayTokenStore(o.config);
    return { store, audited: true, close };
  }
  if (o.databaseUrl !== undefined) {
    const store = await openPostgresTokenStore({ connectionString: o.databaseUrl });
    return { store, audited: false, close: () => store.close() };
  }
  const path = o.store ?? DEFAULT_STORE;
  if (path !== ":memory:") makeParentDirectory(path, "the token store");
  const store = openSqliteTokenStore(path);
  return { store, audited: false, close: () => store.close() };
}

function integer(value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new InvalidArgumentError("must be a non-negative integer");
  return Number(value);
}

function withStoreOptions(cmd: Command): Command {
  return cmd
    .option("--config <file>", "act on this gateway configuration's token store, recording in its audit log")
    .option("--store <file>", `SQLite token store (default ${DEFAULT_STORE})`)
    .option("--database-url <url>", "use the Postgres token store at this connection string instead");
}

/** Registers `revoke` and `reinstate` on `program`. */
export function registerRevokeCommand(program: Command, io: RevokeCommandIo = { out: (line) => process.stdout.write(`${printable(line)}\n`) }): void {
  withStoreOptions(
    program
      .command("revoke")
      .description("revoke a principal, tenant, role, session, capability (and its subtree), token block or signing key, in every process sharing the store")
      .option("--principal <id>", "every capability and token minted for this principal; the mint refuses it until reinstated")
      .option("--tenant <id>", "everything minted with this tenant")
      .option("--role <name>", "everything minted with this role")
      .option("--session <id>", "every chain under the caretaker labelled with this session (closes gateway sessions)")
      .option("--capability-id <id>", "this capability and everything derived from it, in process and in every token")
      .option("--revocation-id <hex>", "this token block, and every token made from it")
      .option("--key-id <n>", "everything signed under this root key id; the key is refused from then on", integer)
      .requiredOption("--reason <text>", "why, recorded with the revocation and in the audit log (at most 1000 characters)")
      .option("--by <name>", "who revokes, as the audit log names them (default cli:<user name>)"),
  ).action(async (opts: TargetOptions & StoreOptions & { reason: string; by?: string }) => {
    const target = targetOf(opts, ["principal", "tenant", "role", "session", "capabilityId", "revocationId", "keyId"]);
    const { store, audited, close } = await openStores(opts);
    try {
      const by = audited ? operator(store, opts.by) : undefined;
      const report = await store.revoke(target, { reason: opts.reason, ...(by === undefined ? {} : { by }) });
      io.out(`revoked ${report.kind} ${report.id}: every process sharing the store refuses it from its next decision`);
    } finally {
      await close();
    }
  });

  withStoreOptions(
    program
      .command("reinstate")
      .description("let the mint issue again for a revoked principal, tenant or role; what was minted before stays revoked")
      .option("--principal <id>", "the principal")
      .option("--tenant <id>", "the tenant")
      .option("--role <name>", "the role"),
  ).action(async (opts: TargetOptions & StoreOptions) => {
    const target = targetOf(opts, ["principal", "tenant", "role"]) as ReinstateTarget;
    const { store, close } = await openStores(opts);
    try {
      await store.reinstate(target);
      io.out(`reinstated ${Object.keys(target)[0] ?? ""} ${String(Object.values(target)[0])}: capabilities minted from now on are live; earlier ones stay revoked`);
    } finally {
      await close();
    }
  });
}
