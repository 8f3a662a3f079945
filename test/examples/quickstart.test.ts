import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

describe("examples/quickstart.ts (the README's first command)", () => {
  it("shows allowed, denied and revoked calls with the link that denied", () => {
    const out = execFileSync(process.execPath, ["examples/quickstart.ts"], { encoding: "utf8" });
    const lines = out.split("\n");
    const row = (who: string, what: string) => lines.find((l) => l.startsWith(who) && l.includes(what)) ?? "";
    expect(row("alice (root)", "tool.call lookup_customer")).toContain("allowed");
    expect(row("alice (root)", `{"tenantId":"globex"}`)).toContain("DENIED (ERR_CAPABILITY_DENIED)");
    expect(row("sub-tool (customer 7)", `"id":7}`)).toContain("allowed");
    expect(row("sub-tool (customer 7)", `"id":8}`)).toContain("DENIED (ERR_CAPABILITY_DENIED)");
    expect(row("sub-tool (customer 7)", "db.read Order")).toContain("DENIED");
    expect(out).toMatch(/fs\.write \/srv\/kb\/faq\/returns\.md\s+DENIED/);
    expect(out).toMatch(/DENIED \(ERR_REVOKED\)\s*\n\s+↳ link 2 \(.*\) was revoked: task finished/);
    expect(out).toMatch(/summarizer lineage: \w{8} → \w{8} → \w{8}/);
  });
});
