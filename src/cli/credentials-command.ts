/**
 * `agentcap credentials set | remove | list | keygen`: each user's own
 * credentials for an upstream or an HTTP origin, in the vault of a gateway
 * named by its `--config` (the token store's database, sealed with the key
 * its credentials section names). A value is read from a file only, so it
 * never shows in the process list or a shell's history, and nothing here
 * ever prints one.
 */
import { Command } from "commander";
import { InvalidInput } from "../kernel/index.js";
import { loadGatewayConfig } from "../mcp/index.js";
import { openCredentialVault } from "../mcp/internal.js";
import { generateVaultKey, type CredentialVault } from "../token/index.js";
import { printable } from "../audit/internal.js";
import { makeParentDirectory, readInputFile, writeOutputFile } from "./files.js";

/** Where the commands write; the default is the process's standard output. */
export interface CredentialsCommandIo {
  readonly out: (line: string) => void;
}

/** The largest credential file read: far beyond any real token. */
const MAX_VALUE_FILE_BYTES = 64 * 1024;

/** The credential in `--value @file`, without its final line break; InvalidInput for a value typed on the command line. */
function valueArg(value: string): string {
  if (!value.startsWith("@") || value.length === 1) {
    throw new InvalidInput("--value takes @file, a file holding the credential (such as \"Bearer …\"), so the secret never shows in the process list or a shell's history");
  }
  return readInputFile(value.slice(1), "the --value file", MAX_VALUE_FILE_BYTES).replace(/\r?\n$/, "");
}

async function withVault<T>(file: string, act: (vault: CredentialVault) => Promise<T>): Promise<T> {
  const config = await loadGatewayConfig(file);
  const vault = await openCredentialVault(config);
  if (vault === null) throw new InvalidInput(`gateway configuration ${file} has no credentials section; add "credentials": { "keyFile": "vault.key" } to keep users' credentials`);
  try {
    return await act(vault);
  } finally {
    await vault.close();
  }
}

/** Registers `credentials` on `program`. */
export function registerCredentialsCommand(program: Command, io: CredentialsCommandIo = { out: (line) => process.stdout.write(`${printable(line)}\n`) }): void {
  const credentials = program.command("credentials").description("users' own credentials for upstreams and HTTP origins, sealed in the gateway's vault");
  credentials
    .command("set")
    .description("store a principal's credential for an origin (replacing any); the gateway sends it as the Authorization header of that principal's requests there")
    .requiredOption("--config <file>", "the gateway configuration")
    .requiredOption("--principal <id>", "whose credential it is")
    .requiredOption("--origin <origin>", "where it is sent: scheme, host and port, such as https://api.example.com")
    .requiredOption("--value <@file>", "a file holding the header value, such as Bearer …")
    .action(async (opts: { config: string; principal: string; origin: string; value: string }) => {
      const value = valueArg(opts.value);
      await withVault(opts.config, async (vault) => {
        await vault.set(opts.principal, opts.origin, value);
      });
      io.out(`stored the credential of ${opts.principal} for ${new URL(opts.origin).origin}`);
    });
  credentials
    .command("remove")
    .description("remove a principal's credential for an origin")
    .requiredOption("--config <file>", "the gateway configuration")
    .requiredOption("--principal <id>", "whose credential it is")
    .requiredOption("--origin <origin>", "the origin it is for")
    .action(async (opts: { config: string; principal: string; origin: string }) => {
      const removed = await withVault(opts.config, (vault) => vault.remove(opts.principal, opts.origin));
      if (!removed) throw new InvalidInput(`there is no credential of ${opts.principal} for ${opts.origin} to remove`);
      io.out(`removed the credential of ${opts.principal} for ${new URL(opts.origin).origin}`);
    });
  credentials
    .command("list")
    .description("list stored credentials (principal, origin, key id, when set), never their values")
    .requiredOption("--config <file>", "the gateway configuration")
    .action(async (opts: { config: string }) => {
      for (const e of await withVault(opts.config, (vault) => vault.list())) io.out(`${e.principal}\t${e.origin}\tkey ${e.keyId}\t${new Date(e.updatedAt).toISOString()}`);
    });
  credentials
    .command("keygen")
    .description("write a new vault key (32 random bytes, base64) to a file readable by its owner only")
    .requiredOption("--out <file>", "where to write it; an existing file is not replaced")
    .action((opts: { out: string }) => {
      makeParentDirectory(opts.out, "the vault key file");
      writeOutputFile(opts.out, `${generateVaultKey()}\n`, "the vault key file", { mode: 0o600, flag: "wx" });
      io.out(`wrote a vault key to ${opts.out}; keep it out of the database and its backups`);
    });
}
