/**
 * The one module that touches `@biscuit-auth/biscuit-wasm`. Everything else in
 * agentcap sees plain strings: keys as Biscuit's text forms, tokens as URL-safe
 * base64, blocks as Datalog source with named parameters.
 *
 * The package's entry point imports its `.wasm` file as an ES module, which
 * Node prints an ExperimentalWarning for and which logs "biscuit-wasm loading"
 * on start. We instantiate the same `.wasm` ourselves from the package's own
 * glue code instead, giving its start function a silent log import, so
 * nothing reaches the user's terminal and no global is touched.
 */
import { readFileSync } from "node:fs";
import type * as BiscuitWasm from "@biscuit-auth/biscuit-wasm";
import { InvalidInput, InvalidToken } from "../kernel/index.js";
import { resolveOptional } from "../kernel/internal.js";

type WasmExports = Record<string, unknown>;
type Glue = typeof BiscuitWasm & { __wbg_set_wasm(exports: WasmExports): void };

/** The part of the WebAssembly global we use; this project's TypeScript libs (ES2024, no DOM) do not declare it. */
interface WasmGlobal {
  readonly Module: (new (bytes: Uint8Array) => object) & { imports(module: object): readonly { readonly module: string }[] };
  readonly Instance: new (module: object, imports: Record<string, unknown>) => { readonly exports: WasmExports };
}
const Wasm = (globalThis as unknown as { readonly WebAssembly: WasmGlobal }).WebAssembly;

const entry = resolveOptional("@biscuit-auth/biscuit-wasm", "agentcap/token (Biscuit tokens)");

/*
 * The glue module keeps the instance it was given in a module variable, so two
 * copies of this module (two builds or versions of agentcap in one process)
 * sharing one glue would each install their own instance there, and the
 * first one's objects would then be read from the second one's memory
 * ("memory access out of bounds"). Each copy imports the glue under a URL of
 * its own (the query names this module), which ES modules load as a module
 * of its own.
 */
const ownCopy = `?agentcap=${encodeURIComponent(import.meta.url)}`;
const glueModule = (name: string): string => `${new URL(name, entry).href}${ownCopy}`;

async function load(): Promise<Glue> {
  const glue = (await import(glueModule("biscuit_bg.js"))) as Glue;
  const module = new Wasm.Module(readFileSync(new URL("biscuit_bg.wasm", entry)));
  // The start function installs the panic hook and logs a banner through the glue's log imports; the banner is not for our users.
  let starting = true;
  const quiet = (namespace: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(namespace).map(([name, value]) => [
        name,
        name.startsWith("__wbg_log_") && typeof value === "function"
          ? (...args: unknown[]): unknown => (starting ? undefined : (value as (...a: unknown[]) => unknown)(...args))
          : value,
      ]),
    );
  const imports: Record<string, unknown> = {};
  for (const name of new Set(Wasm.Module.imports(module).map((i) => i.module))) {
    imports[name] = quiet((await import(glueModule(name))) as Record<string, unknown>);
  }
  const instance = new Wasm.Instance(module, imports);
  glue.__wbg_set_wasm(instance.exports);
  (instance.exports.__wbindgen_start as () => void)();
  starting = false;
  return glue;
}

const B = await load();

/** Datalog source with `{name}` parameters; strings always travel as parameters, never spliced into source. */
export interface DatalogCode {
  readonly source: string;
  readonly params: Readonly<Record<string, string | number | boolean>>;
}

/**
 * Limits for every authorizer run. Passed explicitly: the library's default
 * time limit (1 ms) makes ordinary checks fail with a spurious Timeout on a
 * cold or busy process.
 */
const RUN_LIMITS = Object.freeze({ max_facts: 10_000, max_iterations: 1_000, max_time_micro: 1_000_000 });

/** A Biscuit error value in words: the library throws plain objects such as `{ Format: { Signature: ... } }`. */
function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  const text = typeof e === "string" ? e : JSON.stringify(e);
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** Uses a wasm-backed object, then frees its wasm memory at once rather than whenever the GC's finalizer runs. */
function freeing<T extends { free(): void }, R>(value: T, use: (value: T) => R): R {
  try {
    return use(value);
  } finally {
    value.free();
  }
}

/** An Ed25519 key pair in Biscuit's text forms (`ed25519-private/<hex>`, `ed25519/<hex>`). */
export interface KeyPairText {
  readonly privateKey: string;
  readonly publicKey: string;
}

/** A fresh Ed25519 key pair from the platform's random source. */
export function generateKeyPair(): KeyPairText {
  return freeing(new B.KeyPair(B.SignatureAlgorithm.Ed25519), (kp) => ({
    privateKey: freeing(kp.getPrivateKey(), (k) => k.toString()),
    publicKey: freeing(kp.getPublicKey(), (k) => k.toString()),
  }));
}

function privateKey(text: string): BiscuitWasm.PrivateKey {
  if (typeof text !== "string" || !/^ed25519-private\/[0-9a-f]{64}$/.test(text)) {
    throw new InvalidInput("signing key must be an Ed25519 private key written as ed25519-private/<64 hex digits>");
  }
  return B.PrivateKey.fromString(text);
}

const validPublicKeys = new Set<string>();

/**
 * A fresh PublicKey object for `text`. Fresh every time: the key provider of
 * `fromBase64WithProvider` takes ownership of the object it is given.
 */
function publicKey(text: string): BiscuitWasm.PublicKey {
  const known = validPublicKeys.has(text);
  if (!known && (typeof text !== "string" || !/^ed25519\/[0-9a-f]{64}$/.test(text))) {
    throw new InvalidInput(`public key ${JSON.stringify(text)} must be an Ed25519 public key written as ed25519/<64 hex digits>`);
  }
  let key: BiscuitWasm.PublicKey;
  try {
    key = B.PublicKey.fromString(text.slice("ed25519/".length), B.SignatureAlgorithm.Ed25519);
  } catch (e) {
    throw new InvalidInput(`public key ${text} is not a valid Ed25519 point: ${describeError(e)}`);
  }
  if (!known) validPublicKeys.add(text);
  return key;
}

/** Validates a public key's text form; throws InvalidInput naming what is wrong. */
export function checkPublicKey(text: string): void {
  if (!validPublicKeys.has(text)) publicKey(text).free();
}

/** The public key of a private key. */
export function publicKeyOf(privateKeyText: string): string {
  return freeing(B.KeyPair.fromPrivateKey(privateKey(privateKeyText)), (kp) => freeing(kp.getPublicKey(), (k) => k.toString()));
}

function addCode(builder: { addCodeWithParameters(source: string, params: unknown, scope: unknown): void }, code: DatalogCode): void {
  try {
    builder.addCodeWithParameters(code.source, { ...code.params }, {});
  } catch (e) {
    // Our compiler wrote this code: a parse failure here is a bug, not bad user input.
    throw new InvalidInput(`this link cannot be expressed in a Biscuit token (Biscuit refused its checks: ${describeError(e)})`, { cause: e });
  }
}

/** A token and the revocation ids of its blocks, authority first. */
export interface IssuedToken {
  readonly token: string;
  readonly revocationIds: readonly string[];
}

/** Signs a new token: `authority` as its authority block, then one attenuation block per entry of `blocks`, under root key id `keyId`. */
export function issueToken(signingKey: string, keyId: number, authority: DatalogCode, blocks: readonly DatalogCode[]): string {
  const key = privateKey(signingKey);
  try {
    const builder = B.Biscuit.builder();
    addCode(builder, authority);
    builder.setRootKeyId(keyId);
    return withBlocks(builder.build(key), blocks);
  } finally {
    key.free();
  }
}

/** Signs a token of the authority block alone, and gives its revocation id. */
export function issueAuthority(signingKey: string, keyId: number, authority: DatalogCode): IssuedToken {
  const key = privateKey(signingKey);
  try {
    const builder = B.Biscuit.builder();
    addCode(builder, authority);
    builder.setRootKeyId(keyId);
    return freeing(builder.build(key), (t) => ({ token: t.toBase64(), revocationIds: (t.getRevocationIdentifiers() as unknown[]).map(String) }));
  } finally {
    key.free();
  }
}

/** Appends one block to a verified token; gives the result and the revocation ids of all its blocks. */
export function extendToken(token: string, keys: PublicKeys, block: DatalogCode): IssuedToken {
  return freeing(parse(token, keys).t, (t) => {
    const builder = new B.BlockBuilder();
    addCode(builder, block);
    let next: BiscuitWasm.Biscuit;
    try {
      next = t.appendBlock(builder);
    } catch (e) {
      const text = describeError(e);
      throw new InvalidToken(text.includes("Sealed") ? "token is sealed: it cannot be attenuated further" : `cannot attenuate token: ${text}`);
    }
    return freeing(next, (n) => ({ token: n.toBase64(), revocationIds: (n.getRevocationIdentifiers() as unknown[]).map(String) }));
  });
}

/** Appends `blocks` to a parsed token and serializes the result, freeing every intermediate. */
function withBlocks(token: BiscuitWasm.Biscuit, blocks: readonly DatalogCode[]): string {
  let current = token;
  try {
    if (current.countBlocks() + blocks.length > MAX_TOKEN_BLOCKS) {
      throw new InvalidToken(`attenuating would make a token of ${current.countBlocks() + blocks.length} blocks; the limit is ${MAX_TOKEN_BLOCKS}`);
    }
    for (const code of blocks) {
      const builder = new B.BlockBuilder();
      addCode(builder, code);
      let next: BiscuitWasm.Biscuit;
      try {
        next = current.appendBlock(builder);
      } catch (e) {
        const text = describeError(e);
        throw new InvalidToken(text.includes("Sealed") ? "token is sealed: it cannot be attenuated further" : `cannot attenuate token: ${text}`);
      }
      current.free();
      current = next;
    }
    return current.toBase64();
  } finally {
    current.free();
  }
}

/** What a parsed and signature-checked token holds, as plain data. */
export interface OpenedToken {
  readonly keyId: number;
  /** Each block's Datalog, as Biscuit prints it; authority first. */
  readonly blocks: readonly string[];
  /** Each block's revocation id (hex of its signature); authority first. */
  readonly revocationIds: readonly string[];
  /** Whether some string in the token's symbol tables holds a double quote, which makes its printing ambiguous. */
  readonly quotedString: boolean;
}

/** Largest token accepted, in base64 characters: bigger input is refused before parsing. */
export const MAX_TOKEN_LENGTH = 256 * 1024;

/**
 * Most blocks a token may have, authority block included: every block is
 * Datalog the authorizer runs on each first verification, so a chain of
 * hundreds (which fits in MAX_TOKEN_LENGTH) would make every request with a
 * fresh token cost a second of CPU. Real delegation chains are a few links
 * deep; attenuating past the limit is refused too.
 */
export const MAX_TOKEN_BLOCKS = 64;

const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/** Public keys by root key id. */
export type PublicKeys = ReadonlyMap<number, string>;

/**
 * Parses `token` and checks every block's signature against the public key
 * its root key id names. Throws InvalidToken for anything else, naming an
 * unknown key id.
 */
function parse(token: string, keys: PublicKeys): { readonly t: BiscuitWasm.Biscuit; readonly keyId: number } {
  if (typeof token !== "string" || token.length === 0) throw new InvalidToken("token is empty");
  if (token.length > MAX_TOKEN_LENGTH) throw new InvalidToken(`token is ${token.length} characters long; the limit is ${MAX_TOKEN_LENGTH}`);
  if (!BASE64URL.test(token)) throw new InvalidToken("token is not URL-safe base64");
  for (const text of keys.values()) checkPublicKey(text);
  let asked: unknown = null;
  // The provider must never throw (a throw inside it aborts the wasm code), so every key was parsed above,
  // and an unknown id gets a stand-in key whose failure is reported as the unknown id after.
  const provider = (id: unknown): BiscuitWasm.PublicKey => {
    asked = id;
    return publicKey((typeof id === "number" ? keys.get(id) : undefined) ?? STAND_IN_KEY);
  };
  let parsed: BiscuitWasm.Biscuit;
  try {
    parsed = B.Biscuit.fromBase64WithProvider(token, provider);
  } catch (e) {
    throw unknownKey(asked, keys) ?? new InvalidToken(`token failed to parse or verify: ${describeError(e)}`);
  }
  if (typeof asked !== "number" || !keys.has(asked)) {
    parsed.free();
    throw unknownKey(asked ?? undefined, keys) ?? new InvalidToken("token names no root key id");
  }
  const count = parsed.countBlocks();
  if (count > MAX_TOKEN_BLOCKS) {
    parsed.free();
    throw new InvalidToken(`token has ${count} blocks; the limit is ${MAX_TOKEN_BLOCKS}`);
  }
  return { t: parsed, keyId: asked };
}

const STAND_IN_KEY = generateKeyPair().publicKey;

function unknownKey(asked: unknown, keys: PublicKeys): InvalidToken | null {
  if (asked === null) return null;
  if (typeof asked !== "number") return new InvalidToken("token names no root key id; agentcap tokens always carry the id of the key that signed them");
  if (keys.has(asked)) return null;
  const known = [...keys.keys()].join(", ") || "none";
  return new InvalidToken(`token was signed with root key id ${asked}, which this verifier does not know (known key ids: ${known})`);
}

/** Parses and verifies `token`; returns its blocks and revocation ids. */
export function openToken(token: string, keys: PublicKeys): OpenedToken {
  const { t, keyId } = parse(token, keys);
  return freeing(t, () => {
    const count = t.countBlocks();
    const blocks: string[] = [];
    for (let i = 0; i < count; i++) blocks.push(t.getBlockSource(i));
    const revocationIds = (t.getRevocationIdentifiers() as unknown[]).map(String);
    return { keyId, blocks, revocationIds, quotedString: hasQuotedSymbol(t.toString()) };
  });
}

/**
 * Whether a symbol of any block holds a `"`. Biscuit prints a block's
 * Datalog with strings unescaped, so only when no string holds a quote does
 * the printing name one structure (each `"` then delimits a string). The
 * token's debug text lists each block's symbol table escaped (`\"`, `\\`),
 * one line per block: that list, not the printed Datalog, is what is read
 * here. A string crafted to look like such a line cannot hide the real ones.
 */
function hasQuotedSymbol(debug: string): boolean {
  for (const line of debug.split("\n")) {
    if (!line.trimStart().startsWith("symbols: [")) continue;
    if (line.replaceAll("\\\\", "").includes('\\"')) return true;
  }
  return false;
}

/** Appends attenuation blocks; the token is verified first, and a sealed token is refused. */
export function appendBlocks(token: string, keys: PublicKeys, blocks: readonly DatalogCode[]): string {
  return withBlocks(parse(token, keys).t, blocks);
}

/** Seals the token: it stays valid and can no longer be attenuated. */
export function sealToken(token: string, keys: PublicKeys): string {
  return freeing(parse(token, keys).t, (t) => {
    try {
      return freeing(t.sealToken(), (s) => s.toBase64());
    } catch (e) {
      throw new InvalidToken(`cannot seal token: ${describeError(e)}`);
    }
  });
}

/** How Biscuit's own authorizer decided: allowed, or the (block, check) pairs that failed. */
export type AuthorizerResult =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      readonly failed: readonly { readonly block: number; readonly check: number }[];
      /** Each block's Datalog, to tell what the failed checks enforce. */
      readonly blocks: readonly string[];
    };

interface FailedCheck {
  readonly Block?: { readonly block_id: number; readonly check_id: number };
}

/** Runs Biscuit's authorizer on `token` with `facts` and `allow if true`, under explicit run limits. */
export function authorizeToken(token: string, keys: PublicKeys, facts: DatalogCode): AuthorizerResult {
  return freeing(parse(token, keys).t, (t) => {
    const builder = new B.AuthorizerBuilder();
    addCode(builder, facts);
    addCode(builder, { source: "allow if true;", params: {} });
    return freeing(builder.buildAuthenticated(t), (authorizer) => {
      try {
        authorizer.authorizeWithLimits(RUN_LIMITS);
        return { allowed: true } as const;
      } catch (e) {
        const checks = (e as { FailedLogic?: { Unauthorized?: { checks?: readonly FailedCheck[] } } }).FailedLogic?.Unauthorized?.checks;
        if (checks === undefined) throw new InvalidToken(`Biscuit authorizer failed: ${describeError(e)}`);
        const failed = checks.flatMap((c) => (c.Block ? [{ block: c.Block.block_id, check: c.Block.check_id }] : []));
        const blocks = Array.from({ length: t.countBlocks() }, (_, i) => t.getBlockSource(i));
        return { allowed: false, failed, blocks } as const;
      }
    });
  });
}

/** The block `code` would make, printed the way Biscuit prints a block of a token. */
export function renderBlock(code: DatalogCode): string {
  return freeing(new B.BlockBuilder(), (builder) => {
    addCode(builder, code);
    return builder.toString();
  });
}
