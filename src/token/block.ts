/**
 * What one block of an agentcap token holds: a single `agentcap_block` fact
 * with the link's data as canonical JSON (so a verifier can rebuild the kernel
 * link exactly), followed by the Datalog checks compiled from that data (so
 * any Biscuit verifier enforces the same link). The verifier recompiles the
 * checks from the JSON and requires Biscuit's printing of both to be equal, so
 * a block whose checks and data disagree is refused.
 */
import { z } from "zod";
import { InvalidInput, InvalidToken, parseConditions, parseGrant, type Grant, type LinkConditions, type MintRecord } from "../kernel/index.js";
import { canonicalJson, RESERVED_LABELS } from "../kernel/internal.js";
import { compileLinkChecks, type CheckKind } from "./compile.js";
import type { DatalogCode } from "./biscuit.js";

/** One link of a token, as its block carries it; `v` is the layout version, and a verifier refuses any other. */
export type BlockData =
  | { readonly v: 1; readonly kind: "root"; readonly id: string; readonly keyId: number; readonly mint: MintRecord; readonly grant: Grant }
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
  z.strictObject({ v: z.literal(1), kind: z.literal("root"), id: linkId, keyId: z.number().int().nonnegative().max(0xffffffff), mint: mintSchema, grant: z.unknown() }),
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
  try {
    switch (d.kind) {
      case "root":
        return { ...d, grant: parseGrant(d.grant) };
      case "narrow":
        return { ...d, grant: parseGrant(d.grant) };
      case "restrict":
        return { ...d, conditions: parseConditions(d.conditions) };
      case "revocable":
        return d;
    }
  } catch (e) {
    if (e instanceof InvalidInput) throw new InvalidToken(`${where}: ${e.message}`);
    throw e;
  }
}

/** A block's Datalog, and what each of its checks enforces, in order. */
export interface CompiledBlock {
  readonly code: DatalogCode;
  readonly checks: readonly CheckKind[];
}

/** Compiles a block from its JSON and decoded data: the `agentcap_block` fact, then the link's checks. */
export function compileBlock(json: string, data: BlockData): CompiledBlock {
  const params: Record<string, string | number | boolean> = { block: json };
  const lines = ["agentcap_block({block});"];
  let checks: CheckKind[] = [];
  if (data.kind === "root" || data.kind === "narrow") {
    checks = compileLinkChecks(data.grant, data.grant, params, lines);
  } else if (data.kind === "restrict") {
    checks = compileLinkChecks(null, data.conditions, params, lines);
  }
  return { code: { source: lines.join("\n"), params }, checks };
}

const FACT_PREFIX = 'agentcap_block("';
const FACT_SUFFIX = '");';

/**
 * The JSON of a block, read from Biscuit's printing of it. Biscuit prints
 * strings without escaping; canonical JSON has no raw newline, so the first
 * line is exactly the fact.
 */
export function blockJsonOf(source: string, index: number): string {
  const first = source.split("\n", 1)[0] ?? "";
  if (!first.startsWith(FACT_PREFIX) || !first.endsWith(FACT_SUFFIX)) {
    throw new InvalidToken(`${index === 0 ? "authority block" : `block ${index}`} is not an agentcap block (it has no agentcap_block fact)`);
  }
  return first.slice(FACT_PREFIX.length, -FACT_SUFFIX.length);
}
