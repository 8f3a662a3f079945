/**
 * What one block of an agentcap token holds: a single `agentcap_block` fact
 * with the link's data as canonical JSON, carried as bytes (so a verifier can
 * rebuild the kernel link exactly), followed by the Datalog checks compiled
 * from that data (so any Biscuit verifier enforces the same link). The
 * verifier recompiles the checks from the JSON and requires the block to be
 * the compiled one.
 *
 * Biscuit prints strings without escaping, so printed text alone cannot tell
 * a block's structure: a string fact holding `…");\ncheck if tool("a` prints
 * like a fact followed by a check. Hence the data travels as bytes, which
 * print as `hex:…` and cannot be confused with anything else, and the reader
 * also counts the block's checks from Biscuit's own evaluation (see
 * `openToken`), not from the printing.
 */
import { z } from "zod";
import { InvalidInput, InvalidToken, parseConditions, parseGrant, type Grant, type LinkConditions, type MintRecord } from "../kernel/index.js";
import { canonicalJson, RESERVED_LABELS } from "../kernel/internal.js";
import { compileLinkChecks, type CheckKind } from "./compile.js";
import { renderBlock, type DatalogCode } from "./biscuit.js";

/** One link of a token, as its block carries it; `v` is the layout version, and a verifier refuses any other. */
export type BlockData =
  | {
      readonly v: 1;
      readonly kind: "root";
      readonly id: string;
      readonly keyId: number;
      /** The id of the token store the token was minted under: it verifies only against that store. */
      readonly store: string;
      /** The mint record without its mintId, which a verifier derives from the key that signed the token. */
      readonly mint: Omit<MintRecord, "mintId">;
      readonly grant: Grant;
    }
  | { readonly v: 1; readonly kind: "narrow"; readonly id: string; readonly grant: Grant }
  | { readonly v: 1; readonly kind: "restrict"; readonly id: string; readonly conditions: LinkConditions }
  | { readonly v: 1; readonly kind: "revocable"; readonly id: string; readonly labels: Readonly<Record<string, string>> };

/**
 * Labels the runtime and the gateway give their own caretakers (the kernel's
 * list); they attribute events to a session, task, tool call or agent, so a
 * token block never carries them (a holder could otherwise file its calls
 * under another session).
 */
export { RESERVED_LABELS };

const labels = z.record(z.string(), z.string().min(1).max(256)).superRefine((given, ctx) => {
  for (const name of Object.keys(given)) {
    if (RESERVED_LABELS.includes(name)) ctx.addIssue({ code: "custom", path: [name], message: "is reserved for the runtime's and the gateway's own caretakers" });
    else if (name.length === 0 || name.length > 64 || /\p{Cc}/u.test(name)) ctx.addIssue({ code: "custom", path: [name], message: "must be a label name of 1 to 64 characters, none of them control characters" });
  }
});

const linkId = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, "must be a link id (letters, digits and dashes, at most 64)");
const text = z.string().min(1).max(256);

const mintSchema = z.strictObject({
  principal: text,
  tenants: z.array(text).max(1024),
  roles: z.array(text).max(1024),
  requestId: text,
  issuedAt: z.number().int().nonnegative(),
  issuer: text,
});

const blockSchema = z.discriminatedUnion("kind", [
  z.strictObject({ v: z.literal(1), kind: z.literal("root"), id: linkId, keyId: z.number().int().nonnegative().max(0xffffffff), store: linkId, mint: mintSchema, grant: z.unknown() }),
  z.strictObject({ v: z.literal(1), kind: z.literal("narrow"), id: linkId, grant: z.unknown() }),
  z.strictObject({ v: z.literal(1), kind: z.literal("restrict"), id: linkId, conditions: z.unknown() }),
  z.strictObject({ v: z.literal(1), kind: z.literal("revocable"), id: linkId, labels }),
]);

/** Why some string inside `value` is not well-formed Unicode, or null. Biscuit stores UTF-8, which would silently replace a lone surrogate. */
function malformedString(value: unknown): string | null {
  if (typeof value === "string") return value.isWellFormed() ? null : JSON.stringify(value);
  if (typeof value === "object" && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      const bad = malformedString(k) ?? malformedString(v);
      if (bad !== null) return bad;
    }
  }
  return null;
}

/** Encodes a link's data as the canonical JSON its block carries; throws InvalidInput for a string Biscuit cannot carry exactly. */
export function encodeBlock(data: BlockData): string {
  const bad = malformedString(data);
  if (bad !== null) throw new InvalidInput(`cannot put ${bad} in a token: it is not well-formed Unicode (it has a lone surrogate)`);
  return canonicalJson(data);
}

/** Decodes and validates a block's JSON; throws InvalidToken naming what is wrong. */
export function decodeBlock(json: string, index: number): BlockData {
  const where = index === 0 ? "authority block" : `block ${index}`;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new InvalidToken(`${where} does not carry agentcap link data (its agentcap_block fact is not JSON)`);
  }
  const parsed = blockSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InvalidToken(`${where} carries malformed link data: ${issue ? `${issue.path.join(".") || "(top level)"}: ${issue.message}` : "unknown problem"}`);
  }
  if (malformedString(raw) !== null) throw new InvalidToken(`${where} carries a string that is not well-formed Unicode`);
  const d = parsed.data;
  if ((d.kind === "root") !== (index === 0)) {
    throw new InvalidToken(index === 0 ? "authority block is not a root link" : `${where} claims to be a root link; only the authority block can be`);
  }
  let data: BlockData;
  try {
    switch (d.kind) {
      case "root":
        data = { ...d, grant: parseGrant(d.grant) };
        break;
      case "narrow":
        data = { ...d, grant: parseGrant(d.grant) };
        break;
      case "restrict":
        data = { ...d, conditions: parseConditions(d.conditions) };
        break;
      case "revocable":
        data = d;
        break;
    }
  } catch (e) {
    if (e instanceof InvalidInput) throw new InvalidToken(`${where}: ${e.message}`);
    throw e;
  }
  return data;
}

const FACT_PREFIX = "agentcap_block(hex:";
const FACT_SUFFIX = ");";
const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** A block's Datalog, and what each of its checks enforces, in order. */
export interface CompiledBlock {
  readonly code: DatalogCode;
  readonly checks: readonly CheckKind[];
}

/** Compiles a block from its JSON and decoded data: the `agentcap_block` fact, then the link's checks. */
export function compileBlock(json: string, data: BlockData): CompiledBlock {
  const params: Record<string, string | number | boolean> = {};
  // Lower-case hex digits only: safe to write into the source, and printed back exactly so.
  const lines = [`${FACT_PREFIX}${Buffer.from(json, "utf8").toString("hex")}${FACT_SUFFIX}`];
  let checks: CheckKind[] = [];
  if (data.kind === "root" || data.kind === "narrow") {
    checks = compileLinkChecks(data.grant, data.grant, params, lines);
  } else if (data.kind === "restrict") {
    checks = compileLinkChecks(null, data.conditions, params, lines);
  }
  return { code: { source: lines.join("\n"), params }, checks };
}

const CHECK_TEXTS = 4096;
/** Printed checks by the link content they were compiled from (a pure function of it), so a grant seen before is not printed again. */
const checkTexts = new Map<string, string>();

/**
 * The block compiled from `data`, as Biscuit prints a block of a token: the
 * fact (written here, since it holds only hex) and the printed checks, which
 * depend only on the link's grant or conditions and are remembered by them.
 */
export function printedBlock(json: string, data: BlockData): string {
  const fact = `${FACT_PREFIX}${Buffer.from(json, "utf8").toString("hex")}${FACT_SUFFIX}\n`;
  if (data.kind === "revocable") return fact;
  const key = data.kind === "restrict" ? `c${canonicalJson(data.conditions)}` : `g${canonicalJson(data.grant)}`;
  let checks = checkTexts.get(key);
  if (checks === undefined) {
    const { code } = compileBlock(json, data);
    const [, ...lines] = code.source.split("\n");
    checks = renderBlock({ source: lines.join("\n"), params: code.params });
    if (checkTexts.size >= CHECK_TEXTS) checkTexts.clear();
    checkTexts.set(key, checks);
  }
  return fact + checks;
}

/**
 * The JSON of a block, read from Biscuit's printing of it: the first line is
 * the fact, its bytes printed as lower-case hex, which nothing else prints like.
 */
export function blockJsonOf(source: string, index: number): string {
  const first = source.split("\n", 1)[0] ?? "";
  const hex = first.startsWith(FACT_PREFIX) && first.endsWith(FACT_SUFFIX) ? first.slice(FACT_PREFIX.length, -FACT_SUFFIX.length) : "";
  if (!/^(?:[0-9a-f]{2})+$/.test(hex)) {
    throw new InvalidToken(`${index === 0 ? "authority block" : `block ${index}`} is not an agentcap block (it has no agentcap_block fact of bytes)`);
  }
  try {
    return UTF8.decode(Buffer.from(hex, "hex"));
  } catch {
    throw new InvalidToken(`${index === 0 ? "authority block" : `block ${index}`} carries link data that is not UTF-8`);
  }
}
