import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateCheckpointKey } from "../../src/audit/checkpoint.ts";
import { openAuditStore } from "../../src/audit/open.ts";
import { linesFromOtlp } from "../../src/audit/otlp.ts";
import { EXPORT_FORMAT, verifyExport } from "../../src/audit/proof-verifier.ts";
import { registerAuditCommand } from "../../src/cli/audit-command.ts";
import { HOUR, scenario, T0 } from "./fixtures.ts";

async function cli(...args: string[]): Promise<{ out: string; exitCode: number | undefined }> {
  let out = "";
  let exitCode: number | undefined;
  const program = new Command("agentcap").exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  registerAuditCommand(program, { out: (s) => (out += s), setExitCode: (c) => (exitCode = c) });
  await program.parseAsync(args, { from: "user" });
  return { out, exitCode };
}

describe("agentcap audit export: a copy anyone holding the public key can check", () => {
  const dir = mkdtempSync(join(tmpdir(), "agentcap-export-"));
  const path = join(dir, "audit.db");
  const key = generateCheckpointKey("audit.test/export");
  let lines: string[] = [];

  beforeAll(async () => {
    const store = await openAuditStore({ kind: "sqlite", path, checkpoints: { key: key.signerKey, everyEntries: 4 } });
    for (const [, event] of scenario().named) await store.write(event);
    await store.close();
    const out = join(dir, "export.jsonl");
    await cli("audit", "export", "--store", path, "--public-key", key.verifierKey, "--out", out);
    lines = readFileSync(out, "utf8").trimEnd().split("\n");
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes a header, every entry with its sequence number and proof, and a trailer; verify-export accepts it", async () => {
    const header = JSON.parse(lines[0] as string) as { format: string; from: number; to: number };
    expect(header).toMatchObject({ format: EXPORT_FORMAT, from: 1, to: 11 });
    expect(lines).toHaveLength(13);
    expect(JSON.parse(lines[12] as string)).toEqual({ end: true, entries: 11, uncovered: 0 });
    const seen: number[] = [];
    const verdict = verifyExport(lines, key.verifierKey, (e) => seen.push(e.seq));
    expect(verdict).toMatchObject({ ok: true, value: { from: 1, to: 11, entries: 11, checkpoint: { size: 11 } } });
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const file = join(dir, "export.jsonl");
    expect(await cli("audit", "verify-export", file, "--public-key", key.verifierKey)).toEqual({ out: expect.stringMatching(/^ok: entries 1 to 11 \(11\) proved/) as unknown, exitCode: undefined });
  });

  it("a range by time is still checked for gaps within it", async () => {
    const { out } = await cli("audit", "export", "--store", path, "--since", String(T0 + 2 * HOUR), "--public-key", key.verifierKey);
    const part = out.trimEnd().split("\n");
    const header = JSON.parse(part[0] as string) as { from: number; to: number };
    expect(header.from).toBeGreaterThan(1);
    expect(verifyExport(part, key.verifierKey)).toMatchObject({ ok: true, value: { from: header.from, to: 11 } });
  });

  const tampered: [string, (l: string[]) => string[], RegExp][] = [
    ["an entry deleted", (l) => l.filter((_, i) => i !== 5), /seq 6 where 5 was due|an entry is missing/],
    ["two entries swapped", (l) => [l[0], l[2], l[1], ...l.slice(3)] as string[], /where 1 was due/],
    ["an entry repeated", (l) => [...l.slice(0, 4), l[3], ...l.slice(4)] as string[], /where 4 was due/],
    ["an entry's leaf edited", (l) => l.map((x, i) => (i === 3 ? x.replace('"alice"', '"mallory"').replace("alice", "mallory") : x)), /was edited|is not JSON/],
    ["the tail cut off", (l) => l.slice(0, 8), /no trailer: it was cut short after seq 7/],
    ["the tail cut off with the trailer kept", (l) => [...l.slice(0, 8), l.at(-1)] as string[], /trailer counts 11 entries, the export holds 7/],
    ["lines appended after the trailer", (l) => [...l, l[1] as string], /after its end/],
    ["the header's range widened", (l) => [l[0]?.replace('"to":11', '"to":12') ?? "", ...l.slice(1)], /beyond the 11 entries the checkpoint signed/],
    ["the header replaced", (l) => [JSON.stringify({ format: EXPORT_FORMAT, checkpoint: "x", from: 1, to: 11 }), ...l.slice(1)], /./],
  ];
  for (const [what, change, reason] of tampered) {
    it(`is refused with ${what}`, () => {
      const verdict = verifyExport(change(lines), key.verifierKey);
      expect(verdict.ok).toBe(false);
      if (!verdict.ok) expect(verdict.reason).toMatch(reason);
    });
  }

  it("is refused under another key", () => {
    expect(verifyExport(lines, generateCheckpointKey("audit.test/export").verifierKey).ok).toBe(false);
  });

  it("as OpenTelemetry logs (OTLP JSON): every record carries its sequence number and its export line, and verify-export checks the file with the public key alone", async () => {
    const out = join(dir, "export.otlp.jsonl");
    await cli("audit", "export", "--store", path, "--public-key", key.verifierKey, "--format", "otlp", "--out", out);
    const text = readFileSync(out, "utf8");
    const request = JSON.parse(text.split("\n")[0] ?? "") as { resourceLogs: { scopeLogs: { logRecords: { body: { stringValue: string }; attributes: { key: string; value: { intValue?: string } }[] }[] }[] }[] };
    const records = request.resourceLogs[0]?.scopeLogs[0]?.logRecords ?? [];
    expect(records.map((r) => r.body.stringValue)).toEqual(lines);
    expect(records.flatMap((r) => r.attributes.filter((a) => a.key === "agentcap.seq").map((a) => Number(a.value.intValue)))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(linesFromOtlp(text.split("\n"))).toEqual(lines);
    expect((await cli("audit", "verify-export", out, "--public-key", key.verifierKey)).out).toMatch(/^ok: entries 1 to 11 \(11\) proved/);
    // A record edited or dropped in the SIEM's copy is caught.
    const copyOf = (logRecords: readonly unknown[]) => JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords }] }] });
    const edited = copyOf(records.map((r, i) => (i === 3 ? { ...r, body: { stringValue: r.body.stringValue.replace(/"leaf":"./, '"leaf":"~') } } : r)));
    const dropped = copyOf(records.filter((_, i) => i !== 5));
    for (const [name, copy] of [["edited", edited], ["dropped", dropped]] as const) {
      const file = join(dir, `${name}.otlp.jsonl`);
      writeFileSync(file, copy);
      expect({ name, ...(await cli("audit", "verify-export", file, "--public-key", key.verifierKey)) }).toMatchObject({ name, out: expect.stringMatching(/^NOT VERIFIED/) as unknown, exitCode: 1 });
    }
  });
});
