import { describe, expect, it } from "vitest";
import {
  AuditFailure,
  CapabilityDenied,
  callerMessage,
  check,
  createMint,
  denialError,
  FileSystemError,
  InvalidInput,
  InvalidToken,
  revocable,
  type Denied,
} from "../../src/index.ts";

const mint = createMint({ issuer: "callers", policy: () => ({ tools: ["a"] }) });

describe("callerMessage: what a model or an MCP client is shown", () => {
  it("a denial names the rule's finding, never the link ids, the principal or a revocation reason", () => {
    const root = mint.issue({ id: "alice (admin)" });
    const task = revocable(root);
    task.revoke("HR case #4411: alice left");
    const d = check(task.capability, { action: "tool.call", tool: "a" }) as Denied;
    const { code, text } = callerMessage(denialError(d));
    expect(code).toBe("ERR_REVOKED");
    expect(text).toBe("the capability was revoked");
    for (const secret of [root.id, task.capability.id, "alice", "HR case"]) expect(text).not.toContain(secret);

    const other = callerMessage(denialError(check(root, { action: "tool.call", tool: "b" }) as Denied));
    expect(other.code).toBe("ERR_CAPABILITY_DENIED");
    expect(other.text).not.toContain(root.id);
    expect(other.text).not.toContain("alice");
  });

  it("an audit failure says the result is withheld, never the store's own error", () => {
    const { code, text } = callerMessage(new AuditFailure("SQLITE_BUSY at /var/lib/app/audit.db", { cause: new Error("busy") }));
    expect(code).toBe("ERR_AUDIT_FAILURE");
    expect(text).not.toContain("/var/lib");
  });

  it("a bad token says only that it is not valid", () => {
    const { code, text } = callerMessage(new InvalidToken("the token's root key id 7 is not one of the known key ids: 1, 2"));
    expect(code).toBe("ERR_INVALID_TOKEN");
    expect(text).not.toMatch(/\d/);
  });

  it("agentcap's other errors pass their first line; anything else is one code, ERR_FOREIGN_FAILURE", () => {
    expect(callerMessage(new InvalidInput("path must be a string\nmore"))).toEqual({ code: "ERR_INVALID_INPUT", text: "path must be a string" });
    expect(callerMessage(new FileSystemError("cannot read docs/a.txt: no such file", "ENOENT")).code).toBe("ERR_FILE_SYSTEM");
    for (const thrown of [new TypeError("customer not found"), "a string", 42, null]) {
      expect(callerMessage(thrown).code).toBe("ERR_FOREIGN_FAILURE");
    }
    expect(callerMessage(new TypeError("customer not found")).text).toBe("customer not found");
    expect(callerMessage(new Error("x".repeat(2000))).text.length).toBeLessThanOrEqual(501);
    expect(callerMessage(new CapabilityDenied("m", { capabilityId: "c", link: 0, linkId: "c", rule: "r", because: "does not allow it" })).text).toBe(
      "the capability does not allow it",
    );
  });
});
