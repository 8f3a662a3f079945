import { kernel, sqlEntry } from "./built.ts";
import { interleaved, report } from "./harness.ts";
import { database } from "./sql.ts";

/*
 * A masked, scoped, 100-row read through the confined database against the
 * same query on a raw prepared better-sqlite3 statement, measured in turns
 * in one run (see interleaved), as a ratio. The confined read parses the
 * query, has the kernel decide it, binds, runs the statement agentcap
 * compiled, and masks one field of each row; the raw statement only runs.
 */

const ITER = 5_000;
const { createManualClock, createMint } = kernel;
const { createSqlDatabase } = sqlEntry;

/** The confined masked, scoped 100-row read vs the raw prepared query. */
export async function runSqlMaskedBench(): Promise<void> {
  const db = database();
  // A page of one tenant in id order is read straight from this index.
  db.exec("CREATE INDEX customers_tenant_id ON customers (tenant_id, id)");
  const resource = createSqlDatabase({
    sqlite: db,
    schema: {
      Customer: {
        table: "customers",
        primaryKey: "id",
        fields: { id: { type: "integer" }, tenantId: { type: "integer", column: "tenant_id" }, name: { type: "text" }, email: { type: "text" } },
      },
    },
  });
  const mint = createMint({
    issuer: "bench",
    clock: createManualClock(0),
    policy: () => ({ db: [{ model: "Customer", ops: ["read"], scope: { tenantId: 7 }, fieldActions: { email: { mask: "{first2}***" } } }] }),
  });
  const agent = mint.issue({ id: "bench-agent" });
  const query = { model: "Customer", fields: ["id", "name", "email"], orderBy: [{ field: "id" }], limit: 100 } as const;
  const raw = db.prepare("SELECT id, name, email FROM customers WHERE tenant_id = ? ORDER BY id LIMIT 100");
  const rows = await resource.read(agent, query);
  if (rows.length !== 100 || rows[0]?.email !== "c7***") throw new Error("bench setup: the confined read did not return 100 masked rows");
  const [baseline, confined] = await interleaved(
    [
      ["raw prepared statement, 100 rows (baseline)", () => Promise.resolve(raw.all(7))],
      ["confined read: scoped, email masked, 100 rows", () => resource.read(agent, query)],
    ],
    ITER,
  );
  if (baseline === undefined || confined === undefined) throw new Error("unreachable: two cases measured");
  report("sql-masked: a masked, scoped 100-row read", baseline, [confined]);
  db.close();
}
