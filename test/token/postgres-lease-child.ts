/**
 * A second process for the Postgres lease tests. Opens the shared store with
 * the given options and verifies the token (awaiting its leases), then:
 * - `spend <attempts>`: says "ready", waits for "go" on stdin, tries to
 *   authorize `attempts` times (asking for more leases between attempts),
 *   prints "successes <n>", closes the store (returning unused units) and exits;
 * - `hold`: says "ready" and idles until killed, never returning its leases.
 */
import { createInterface } from "node:readline";
import { openPostgresTokenStore, type PostgresStoreOptions } from "../../src/token/postgres-store.ts";
import { verifyShared } from "../../src/token/token.ts";
import { authorize } from "../../src/index.ts";

const [schema = "", token = "", publicKey = "", optionsJson = "{}", mode = "spend", attempts = "0"] = process.argv.slice(2);
const options = JSON.parse(optionsJson) as Partial<PostgresStoreOptions>;
const store = await openPostgresTokenStore({ ...options, connectionString: process.env.DATABASE_URL ?? "", schema });
const verifyOptions = { publicKeys: { 1: publicKey }, store };
const cap = await verifyShared(token, verifyOptions);
console.log("ready");
if (mode === "hold") {
  setInterval(() => undefined, 1000);
} else {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line === "go") break;
  let successes = 0;
  for (let i = 0; i < Number(attempts); i++) {
    if (authorize(cap, { action: "tool.call", tool: "a" }).allowed) successes++;
    else await verifyShared(token, verifyOptions);
  }
  console.log(`successes ${successes}`);
  await store.close();
  process.exit(0);
}
