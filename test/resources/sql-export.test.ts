import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapabilityDenied, createManualClock, createMint, eventSink, InvalidInput, type AuditEvent, type Capability, type Grant } from "../../src/index.ts";
import { createSqlDatabase, type DbCapability, type SqlDatabase } from "../../src/resources/sql/database.ts";
import type { ExportFormat } from "../../src/resources/sql/export.ts";
import type { ReadQuery } from "../../src/resources/sql/query.ts";
import { ENGINES, SCHEMA, type Harness } from "./sql-fixture.ts";

/*
 * A query's results exported as CSV or JSON lines through the capability:
 * the same rows a read returns (scoped, masked), recorded as one read, and
 * CSV cells a spreadsheet would run as formulas neutralized. Both engines.
 */

const GRANT: Grant = {
  db: [{ model: "Customer", ops: ["read", "create"], fields: ["id", "tenantId", "name", "email"], scope: { tenantId: 42 }, fieldActions: { email: { mask: "{first2}***" } } }],
};
const QUERY: ReadQuery = { model: "Customer", fields: ["id", "name", "email"], where: { id: { in: [1, 2, 8] } }, orderBy: [{ field: "id" }] };

describe.each(ENGINES)("export on $name", (engine) => {
  describe.skipIf(engine.skipReason !== null)(engine.skipReason ?? "CSV and JSON lines through the capability", () => {
    let h: Harness;
    let db: SqlDatabase;
    let agent: Capability;
    const events: AuditEvent[] = [];
    const exported = (q: ReadQuery, format: ExportFormat) => db.export(agent as DbCapability<"read">, q, format);

    beforeAll(async () => {
      h = await engine.open();
      await h.reset();
      await h.exec(`INSERT INTO customers (id, tenant_id, name, email, vip) VALUES (8, 42, '=HYPERLINK("http://x.example","a, b")', '-1+1@example.com', ${engine.name === "postgres" ? "false" : "0"})`);
      db = createSqlDatabase({ schema: SCHEMA, ...h.connection, audit: eventSink((e) => void events.push(e)) });
      agent = createMint({ issuer: "export", clock: createManualClock(0), policy: () => GRANT }).issue({ id: "agent" });
    });
    afterAll(async () => {
      await h.close();
    });

    it("writes the rows the capability reads, masked, as CSV with formulas neutralized", async () => {
      events.length = 0;
      expect(await exported(QUERY, "csv")).toBe(
        ["id,name,email", "1,Ada,ad***", "2,Bob,", `8,"'=HYPERLINK(""http://x.example"",""a, b"")",'-1***`, ""].join("\r\n"),
      );
      expect(events.map((e) => [e.request.action, e.decision.allowed, e.outcome.ok])).toEqual([["db.read", true, true]]);
    });

    it("writes JSON lines, one object per row", async () => {
      const lines = (await exported(QUERY, "jsonl")).split("\n");
      expect(lines.pop()).toBe("");
      expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual([
        { id: 1, name: "Ada", email: "ad***" },
        { id: 2, name: "Bob", email: null },
        { id: 8, name: '=HYPERLINK("http://x.example","a, b")', email: "-1***" },
      ]);
    });

    it("refuses what the read refuses, and an unknown format, exporting nothing", async () => {
      await expect(exported({ model: "Customer", fields: ["secretNote"] }, "csv")).rejects.toThrow(CapabilityDenied);
      await expect(exported({ model: "Customer", fields: ["id"], where: { tenantId: 43 } }, "jsonl")).rejects.toThrow(CapabilityDenied);
      await expect(exported(QUERY, "xlsx" as ExportFormat)).rejects.toThrow(InvalidInput);
      expect(await exported({ model: "Customer", fields: ["id", "name"], where: { id: -1 } }, "csv")).toBe("id,name\r\n");
    });
  });
});
