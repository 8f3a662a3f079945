import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

describe("examples/agent-demo.ts", () => {
  it("prints every injected call as denied, the link that denied it, and the summary", () => {
    const out = execFileSync(process.execPath, ["examples/agent-demo.ts"], { encoding: "utf8" });
    const row = (tool: string, what: string) => out.split("\n").find((l) => l.includes(` ${tool} `) && l.includes(what)) ?? "";
    expect(row("list_files", "tool.call list_files")).toMatch(/allowed$/);
    expect(row("read_file", "tool.call read_file")).toMatch(/allowed$/);
    expect(row("write_file", "tool.call write_file")).toContain("DENIED (ERR_CAPABILITY_DENIED)");
    expect(row("fetch_url", "https://evil.example/collect")).toContain("DENIED");
    expect(row("read_file", "~ws/home/.ssh/id_rsa")).toContain("DENIED");
    expect(row("db_query", `{"tenantId":"globex"}`)).toContain("DENIED");
    expect(out).toContain('↳ link 0: confines Customer to rows where tenantId = "acme"');
    expect(out).toContain("↳ link 2: does not grant read on ~ws/home/.ssh/id_rsa");
    expect(out.match(/^\d+ {2}alice /gm)).toHaveLength(6);
    expect(out).toMatch(/summary: Q3: revenue up 12%/);
    expect(out).toMatch(/link 4 {2}revocable forwarder \{"session":"session-1","task":"summarize-q3-\w{8}"\}/);
  });
});
