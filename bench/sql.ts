import Database from "better-sqlite3";
import type { DbRequest } from "../src/index.ts";
import { kernel, sqlEntry } from "./built.ts";
import { cpuInTurns, measure, measureAsync, report, reportCpuTurns, reportTarget } from "./harness.ts";

/*
 * A confined, indexed single-row read against the same read through a raw
 * prepared better-sqlite3 statement, in one run. The extra rows show where
 * the confined read's time goes: the kernel's decision alone, and the
 * resource's own work (parse, plan lookup, bind, decode) without it.
 */

const ITER = 100_000;
const { check, createManualClock, createMint, narrowToRow } = kernel;
const { createSqlDatabase } = sqlEntry;
const ROWS = 10_000;

/** The customers table both SQL sections read: 10,000 rows over 50 tenants. */
export function database(): Database.Database {
  const db = new Database(":memory:");
  db.exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT NOT NULL, email TEXT)");
  db.exec("CREATE INDEX customers_tenant ON customers (tenant_id)");
  const insert = db.prepare("INSERT INTO customers VALUES (?, ?, ?, ?)");
  db.transaction(() => {
    for (let i = 1; i <= ROWS; i++) insert.run(i, i % 50, `customer ${i}`, `c${i}@example.com`);
  })();
  return db;
}

/** Confined indexed single-row read vs the raw prepared statement, as a ratio. */
export async function runSqlBench(): Promise<void> {
  const db = database();
  const resource = createSqlDatabase({
    sqlite: db,
    schema: {
      Customer: {
        table: "customers",
        primaryKey: "id",
        fields: { id: { type: "integer" }, tenantId: { type: "integer", column: "tenant_id" }, name: { type: "text" }, email: { type: "text", nullable: true } },
      },
    },
  });
  const mint = createMint({
    issuer: "bench",
    clock: createManualClock(0),
    policy: () => ({ db: [{ model: "Customer", ops: ["read"], fields: ["id", "tenantId", "name", "email"], scope: { tenantId: 7 } }] }),
  });
  const tenant = mint.issue({ id: "bench-agent" });
  const customer = narrowToRow(tenant, { model: "Customer", id: 7 });

  // The same question asked directly: the row by primary key, within its tenant.
  const raw = db.prepare("SELECT id, name, email FROM customers WHERE id = ? AND tenant_id = ?");
  const baseline = measure("raw prepared better-sqlite3 statement (baseline)", () => raw.get(7, 7), ITER);

  const query = { model: "Customer", fields: ["id", "name", "email"], where: { id: 7 }, limit: 1 } as const;
  const expected = await resource.read(tenant, query);
  if (expected.length !== 1) throw new Error("bench setup: the confined read did not find the row");
  // measureAsync warms up with 200 calls; the sync cases get 10,000, so the async ones get as many here.
  for (let i = 0; i < 10_000; i++) {
    await resource.read(tenant, query);
    await resource.read(customer, query);
  }

  const request: DbRequest = { action: "db.read", model: "Customer", fields: ["id", "name", "email"], scope: { tenantId: 7, id: 7 } };
  const rows = [
    await measureAsync("confined read, tenant capability (depth 1)", () => resource.read(tenant, query), ITER),
    await measureAsync("confined read, narrowed to the row (depth 2)", () => resource.read(customer, query), ITER),
    measure("confined readSync, narrowed to the row (depth 2)", () => resource.readSync(customer, query), ITER),
    measure("  of which: kernel check of the db.read request (depth 2)", () => check(customer, request), ITER),
    await measureAsync("  an awaited raw statement (the async interface)", () => Promise.resolve(raw.get(7, 7)), ITER),
  ];
  report("sql: confined indexed single-row read", baseline, rows);
  const sync = rows.find((m) => m.name.startsWith("confined readSync"));
  console.log(`  confined readSync: ${((sync?.nsPerOp ?? Number.NaN) / baseline.nsPerOp).toFixed(2)}× the raw prepared statement (target: within 2×)`);
  // The same cases in CPU time, taking turns in batches, which the load other processes put on the machine does not stretch.
  const cpu = await cpuInTurns(
    [
      ["raw prepared statement (baseline)", () => raw.get(7, 7)],
      ["confined readSync, narrowed to the row (depth 2)", () => resource.readSync(customer, query)],
      ["confined read, narrowed to the row (depth 2)", () => resource.read(customer, query)],
      ["kernel check of the db.read request (depth 2)", () => check(customer, request)],
    ],
    2_000,
  );
  reportCpuTurns("in CPU time, taking turns (median of 21 turns; ratio: median of each turn's ratio)", cpu);
  const [, syncCpu, , checkCpu] = cpu;
  console.log(`  confined readSync: ${(syncCpu?.ratio ?? Number.NaN).toFixed(2)}× the raw prepared statement in CPU time (target: within 2×)`);
  reportTarget("kernel check of the db.read (depth 2)", checkCpu?.nsPerOp ?? Number.NaN, 500);
  db.close();
}
