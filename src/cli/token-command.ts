/**
 * `agentcap token keygen | mint | attenuate | inspect | verify | revoke`:
 * tokens from the command line. Files hold JSON: a key file from keygen, a
 * public key set `{ "<key id>": "ed25519/<hex>" }`, grants, requests. With
 * `--config`, a command acts as the gateway of that configuration: its keys
 * and its token store, so what it revokes the running gateway refuses.
 */
import { Command, InvalidArgumentError } from "commander";
import { printable } from "../audit/internal.js";
import { check, createManualClock, InvalidInput, systemClock, type Clock, type Grant, type LinkConditions, type Request } from "../kernel/index.js";
import {
  attenuate,
  createTokenMint,
  generateKeyPair,
  openPostgresTokenStore,
  openSqliteTokenStore,
  readToken,
  revokeToken,
  toToken,
  verify,
  type BlockData,
  type TokenStore,
} from "../token/index.js";
import { loadGatewayConfig, type GatewayConfig } from "../mcp/index.js";
import { configuredPolicy, configuredPublicKeys, configuredSigningKey } from "../mcp/internal.js";
import { makeParentDirectory, readInputFile, writeOutputFile } from "./files.js";
import { openGatewayTokenStore, operator } from "./gateway-stores.js";

/** Where the commands write, and how they set the exit code; the defaults are the process's. */
export interface TokenCommandIo {
  readonly out: (text: string) => void;
  readonly setExitCode: (code: number) => void;
}

const defaultIo: TokenCommandIo = {
  // A token's labels, principal and paths were chosen by whoever made or attenuated it: shown inert, line by line.
  out: (text) => process.stdout.write(`${text.split("\n").map(printable).join("\n")}\n`),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};

const DEFAULT_STORE = ".agentcap/tokens.db";
/** Far above the 256 KiB a token may be, so a longer one is refused by the token's own check, and a device that never ends is not read for ever. */
const MAX_TOKEN_FILE_BYTES = 1024 * 1024;

function readJson(path: string, what: string): unknown {
  const text = readInputFile(path, `${what} file`);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new InvalidInput(`${what} file ${path} is not valid JSON`);
  }
}

/** A token given literally, or as @file (the file's content, trimmed); InvalidInput for a file that cannot be read. */
export function tokenArg(value: string): string {
  if (!value.startsWith("@")) return value.trim();
  return readInputFile(value.slice(1), "the token file", MAX_TOKEN_FILE_BYTES).trim();
}

function keyFile(path: string): { keyId: number; privateKey: string } {
  const data = readJson(path, "key") as { keyId?: unknown; privateKey?: unknown } | null;
  if (typeof data !== "object" || data === null || typeof data.keyId !== "number" || typeof data.privateKey !== "string") {
    throw new InvalidInput(`key file ${path} must hold { "keyId": <number>, "privateKey": "ed25519-private/<hex>" } as written by keygen`);
  }
  return { keyId: data.keyId, privateKey: data.privateKey };
}

/** Where a command finds its public keys: a file, or the gateway configuration whose keys it uses. */
interface KeyOptions {
  readonly publicKeys?: string;
  readonly config?: string;
}

/** The public key set of --public-keys, else that of the gateway --config names. */
async function publicKeys(o: KeyOptions): Promise<Readonly<Record<string, string>>> {
  if (o.publicKeys !== undefined) return readJson(o.publicKeys, "public keys") as Readonly<Record<string, string>>;
  if (o.config !== undefined) return configuredPublicKeys(await loadGatewayConfig(o.config));
  throw new InvalidInput("give --public-keys <file>, or --config <gateway config> to use that gateway's keys");
}

/** Where a command finds its token store: a SQLite file, a Postgres database, or the gateway configuration whose store it uses. */
interface StoreOptions {
  readonly store?: string;
  readonly databaseUrl?: string;
  readonly config?: string;
}

/** The token store the options name (a gateway's with its audit log, so revocations are recorded there), and how to close it. */
async function openStore(options: StoreOptions): Promise<{ readonly store: TokenStore; readonly close: () => Promise<void> }> {
  if (options.config !== undefined) {
    if (options.store !== undefined || options.databaseUrl !== undefined) throw new InvalidInput("--config names the gateway's token store; leave out --store and --database-url");
    return openGatewayTokenStore(options.config);
  }
  if (options.databaseUrl !== undefined) {
    const store = await openPostgresTokenStore({ connectionString: options.databaseUrl });
    return { store, close: () => store.close() };
  }
  const path = options.store ?? DEFAULT_STORE;
  if (path !== ":memory:") makeParentDirectory(path, "the token store");
  const store = openSqliteTokenStore(path);
  return { store, close: () => store.close() };
}

const CONFIG_HELP = "act as the gateway of this configuration: its keys and its token store (revocations recorded in its audit log)";
const STORE_HELP = `SQLite token store (default ${DEFAULT_STORE})`;

function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("must be a non-negative integer");
  return Number(value);
}

const collect = (value: string, previous: string[]) => [...previous, value];

function conditionsSummary(c: LinkConditions): string[] {
  const parts: string[] = [];
  if (c.expiresAt !== undefined) parts.push(`expires ${new Date(c.expiresAt).toISOString()}`);
  if (c.maxUses !== undefined) parts.push(c.maxUses === 1 ? "single use" : `at most ${c.maxUses} uses`);
  if (c.budget?.calls !== undefined) parts.push(`budget ${c.budget.calls} calls`);
  if (c.budget?.cost !== undefined) parts.push(`budget ${c.budget.cost} cost units`);
  if (c.tenants !== undefined) parts.push(`tenants ${c.tenants.join(", ")}`);
  return parts;
}

/** One line per rule of a grant, in words. */
function grantSummary(g: Grant): string[] {
  const lines: string[] = [];
  if (g.tools !== undefined) lines.push(`tools: ${g.tools.length === 0 ? "(none)" : g.tools.join(", ")}`);
  for (const r of g.fs ?? []) lines.push(`fs: ${r.ops.join(",")} ${r.path}${r.subtree === false ? "" : " and below"}`);
  for (const r of g.http ?? []) {
    const reach = r.addresses !== undefined ? ` (resolving into ${r.addresses.join(", ")})` : r.allowPrivateNetwork === true ? " (private network allowed)" : "";
    lines.push(`http: ${r.methods.join(",")} ${r.origin}${r.pathPrefix ?? "/"}…${reach}`);
  }
  for (const r of g.db ?? []) {
    const scope = Object.entries(r.scope ?? {}).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
    lines.push(`db: ${r.ops.join(",")} ${r.model}${r.fields ? ` fields ${r.fields.join(", ")}` : ""}${scope.length > 0 ? ` where ${scope.join(" and ")}` : ""}`);
  }
  for (const r of g.exec ?? []) {
    const args = r.args?.map((a) => (typeof a === "string" ? a : "prefix" in a ? `${a.prefix}*` : "*")).join(" ") ?? "(any arguments)";
    lines.push(`exec: ${r.program} ${args}${r.allowExtraArgs === true ? " …" : ""}${r.cwd ? ` in ${r.cwd}` : ""}`);
  }
  if (lines.length === 0) lines.push("(grants nothing)");
  return lines;
}

function blockSummary(d: BlockData): string[] {
  switch (d.kind) {
    case "root":
      return [`minted for ${d.mint.principal} by ${d.mint.issuer} (key id ${d.keyId}) at ${new Date(d.mint.issuedAt).toISOString()}`, ...grantSummary(d.grant), ...conditionsSummary(d.grant)];
    case "narrow":
      return [...grantSummary(d.grant), ...conditionsSummary(d.grant)];
    case "restrict":
      return conditionsSummary(d.conditions);
    case "revocable":
      return [`revocable forwarder${Object.keys(d.labels).length > 0 ? ` ${JSON.stringify(d.labels)}` : ""}`];
  }
}

/** Registers the `token` command group on `program` and returns the group. */
export function registerTokenCommand(program: Command, io: TokenCommandIo = defaultIo): Command {
  const token = program.command("token").description("capabilities as signed Biscuit tokens: make, narrow offline, inspect, verify, revoke");

  token
    .command("keygen")
    .description("make an Ed25519 signing key; writes the key file and prints the public key set verifiers need")
    .requiredOption("--out <file>", "where to write the private key file (created with mode 0600)")
    .option("--key-id <n>", "root key id written into tokens (for rotation)", integer, 1)
    .action((opts: { out: string; keyId: number }) => {
      const pair = generateKeyPair();
      writeOutputFile(opts.out, `${JSON.stringify({ keyId: opts.keyId, privateKey: pair.privateKey, publicKey: pair.publicKey }, null, 2)}\n`, "--out", { mode: 0o600 });
      io.out(JSON.stringify({ [opts.keyId]: pair.publicKey }, null, 2));
    });

  token
    .command("mint")
    .description("mint a root capability token for a principal, from a grant file or, with --config, as that gateway's policy grants it")
    .option("--key <file>", "key file from keygen (default with --config: the gateway's key file)")
    .requiredOption("--principal <id>", "who the token is minted for")
    .option("--grant <file>", "grant JSON (default with --config: what the gateway's policy grants the principal)")
    .option("--tenant <tenant>", "tenant of the principal (repeatable; default with --config: the configured principal's)", collect, [])
    .option("--role <role>", "role of the principal (repeatable; default with --config: the configured principal's)", collect, [])
    .option("--issuer <name>", "issuer recorded in the mint record (default: the gateway's with --config, else agentcap-cli)")
    .option("--seal", "seal the token: no further attenuation")
    .option("--config <file>", CONFIG_HELP)
    .option("--store <file>", `${STORE_HELP}; the token verifies only against it`)
    .option("--database-url <url>", "bind the token to the Postgres token store instead")
    .action(async (opts: { key?: string; principal: string; grant?: string; tenant: string[]; role: string[]; issuer?: string; seal?: boolean; config?: string; store?: string; databaseUrl?: string }) => {
      const config = opts.config === undefined ? null : await loadGatewayConfig(opts.config);
      if (config === null && (opts.key === undefined || opts.grant === undefined)) throw new InvalidInput("mint needs --key and --grant, or --config <gateway config> to mint as that gateway does");
      const { keyId, privateKey } = opts.key === undefined ? configuredSigningKey(config as GatewayConfig) : keyFile(opts.key);
      const declared = config?.policy.principals[opts.principal];
      const subject = {
        id: opts.principal,
        tenants: opts.tenant.length > 0 || opts.grant !== undefined ? opts.tenant : (declared?.tenants ?? []),
        roles: opts.role.length > 0 || opts.grant !== undefined ? opts.role : (declared?.roles ?? []),
      };
      const grant = opts.grant === undefined ? null : (readJson(opts.grant, "grant") as Grant);
      const policy = grant === null ? configuredPolicy((config as GatewayConfig).policy) : () => grant;
      const { store, close } = await openStore(opts);
      try {
        const mint = createTokenMint({ issuer: opts.issuer ?? config?.issuer ?? "agentcap-cli", signingKey: privateKey, keyId, policy, store });
        io.out(toToken(mint.issue(subject), { seal: opts.seal === true }));
      } finally {
        await close();
      }
    });

  token
    .command("attenuate")
    .description("append a block allowing only what a grant file allows; needs no signing key")
    .requiredOption("--token <token>", "the token, or @file")
    .requiredOption("--grant <file>", "grant JSON")
    .option("--public-keys <file>", "public key set (biscuit-wasm checks signatures when it opens a token)")
    .option("--config <file>", "use the public keys of the gateway of this configuration")
    .option("--seal", "seal the result")
    .action(async (opts: { token: string; grant: string; publicKeys?: string; config?: string; seal?: boolean }) => {
      const grant = readJson(opts.grant, "grant") as Grant;
      io.out(attenuate(tokenArg(opts.token), grant, { publicKeys: await publicKeys(opts), seal: opts.seal === true }));
    });

  token
    .command("inspect")
    .description("print each block: what it grants, its conditions, its link id and revocation id")
    .requiredOption("--token <token>", "the token, or @file")
    .option("--public-keys <file>", "public key set")
    .option("--config <file>", "use the public keys of the gateway of this configuration")
    .action(async (opts: { token: string; publicKeys?: string; config?: string }) => {
      for (const b of readToken(tokenArg(opts.token), await publicKeys(opts))) {
        io.out(`block ${b.index}: ${b.data.kind} link ${b.data.id}`);
        for (const line of blockSummary(b.data)) io.out(`  ${line}`);
        io.out(`  revocation id ${b.revocationId}`);
      }
    });

  token
    .command("verify")
    .description("verify a token and decide one request; exit code 0 allowed, 2 denied")
    .requiredOption("--token <token>", "the token, or @file")
    .option("--public-keys <file>", "public key set")
    .requiredOption("--request <file>", 'request JSON, such as { "action": "fs.read", "path": "/srv/a.txt" }')
    .option("--config <file>", CONFIG_HELP)
    .option("--store <file>", STORE_HELP)
    .option("--database-url <url>", "use the Postgres token store instead")
    .option("--now <ms>", "decide at this time (ms since the epoch) instead of now", integer)
    .action(async (opts: { token: string; publicKeys?: string; request: string; config?: string; store?: string; databaseUrl?: string; now?: number }) => {
      const keys = await publicKeys(opts);
      const { store, close } = await openStore(opts);
      try {
        const clock: Clock = opts.now === undefined ? systemClock : createManualClock(opts.now);
        const cap = verify(tokenArg(opts.token), { publicKeys: keys, store, clock });
        const decision = check(cap, readJson(opts.request, "request") as Request);
        io.out(decision.allowed ? "allowed" : `denied by block ${decision.link} (${decision.linkId}), rule ${decision.rule}: ${decision.reason}`);
        io.setExitCode(decision.allowed ? 0 : 2);
      } finally {
        await close();
      }
    });

  token
    .command("revoke")
    .description("revoke a token, one block by revocation id, or a link by capability id, in the shared store")
    .option("--token <token>", "revoke this token (and every token derived from it), or @file")
    .option("--public-keys <file>", "public key set, needed with --token (unless --config gives the gateway's)")
    .option("--revocation-id <hex>", "revoke the block with this revocation id")
    .option("--capability-id <id>", "revoke the link with this capability id, in every token that contains it")
    .option("--reason <text>", "why, recorded with the revocation", "revoked from the command line")
    .option("--by <name>", "with --config: who revokes, as the gateway's audit log names them (default cli:<user name>)")
    .option("--config <file>", CONFIG_HELP)
    .option("--store <file>", STORE_HELP)
    .option("--database-url <url>", "use the Postgres token store instead")
    .action(async (opts: { token?: string; publicKeys?: string; revocationId?: string; capabilityId?: string; reason: string; by?: string; config?: string; store?: string; databaseUrl?: string }) => {
      const given = [opts.token, opts.revocationId, opts.capabilityId].filter((v) => v !== undefined).length;
      if (given !== 1) throw new InvalidInput("revoke needs exactly one of --token, --revocation-id, --capability-id");
      const keys = opts.token === undefined ? null : await publicKeys(opts);
      const { store, close } = await openStore(opts);
      try {
        // A gateway's store records each revocation in its audit log, naming who revoked.
        const by = opts.config === undefined ? {} : { by: operator(store, opts.by) };
        if (opts.token !== undefined) {
          await revokeToken(tokenArg(opts.token), { publicKeys: keys ?? {}, store, reason: opts.reason, ...by });
        } else if (opts.revocationId !== undefined) {
          await store.revoke({ revocationId: opts.revocationId }, { reason: opts.reason, ...by });
        } else {
          await store.revoke({ capabilityId: opts.capabilityId ?? "" }, { reason: opts.reason, ...by });
        }
        io.out("revoked");
      } finally {
        await close();
      }
    });

  return token;
}
