import { describe, expect, it } from "vitest";
import { formatJsonLines, formatTable, printable } from "../../src/audit/format.ts";
import type { AuditRecord } from "../../src/audit/query.ts";
import { auditSubject } from "../../src/kernel/audit-sink.ts";
import { world } from "./fixtures.ts";

const HOSTILE = [
  "\u001b]0;pwned\u0007",
  "\u001b[2J\u001b[H",
  "a\rb",
  "line\nbreak",
  "\u009b31m",
  "\u007f",
  "evil\u202e\u2066txt.exe",
];

function recordFor(path: string): AuditRecord {
  const { searchTool } = world();
  return {
    seq: 1,
    hash: "0".repeat(64),
    prevHash: "0".repeat(64),
    outcomeSeq: 1,
    event: {
      id: "e1",
      at: 0,
      durationMs: 1,
      kind: "resource",
      tool: "read_file",
      request: { action: "fs.read", path },
      decision: { allowed: true, capabilityId: searchTool.id },
      outcome: { ok: true, resultBytes: 1 },
      subject: auditSubject(searchTool),
    },
  };
}

// Any C0 or C1 control character, DEL, or bidirectional mark.
const ACTIVE = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;

describe("audit output reaches the operator's terminal inert", () => {
  it.each(HOSTILE)("an agent-chosen path %j is escaped in the table and in JSON lines", (name) => {
    const path = `/srv/data/${name}`;
    const table = formatTable([recordFor(path)]);
    expect(table.replaceAll("\n", "")).not.toMatch(ACTIVE);
    const json = formatJsonLines([recordFor(path)]);
    expect(json.slice(0, -1)).not.toMatch(ACTIVE);
    expect((JSON.parse(json) as { event: { request: { path: string } } }).event.request.path).toBe(path);
  });

  it("printable keeps ordinary text and shows what it escapes", () => {
    expect(printable("/srv/data/résumé 2025.txt")).toBe("/srv/data/résumé 2025.txt");
    expect(printable("\u001b[31m")).toBe("\\u001b[31m");
  });
});
