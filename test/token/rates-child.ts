/**
 * A second process for the shared windowed-rate tests. Opens the token store
 * (`sqlite <file>` or `postgres <schema>`), verifies the token (reserving
 * room in its windows), says "ready", waits for "go" on stdin, then calls
 * until the window refuses even after asking the store for more room, prints
 * "admitted <n>", closes the store and exits.
 */
import { createInterface } from "node:readline";
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { verifyShared } from "../../src/token/token.ts";
import { admitAll } from "./rates-support.ts";

const [kind = "", where = "", token = "", publicKey = ""] = process.argv.slice(2);
const store = kind === "sqlite" ? openSqliteTokenStore(where) : await openPostgresTokenStore({ connectionString: process.env.DATABASE_URL ?? "", schema: where });
const options = { publicKeys: { 1: publicKey }, store };
const cap = await verifyShared(token, options);
console.log("ready");
for await (const line of createInterface({ input: process.stdin })) if (line === "go") break;
console.log(`admitted ${await admitAll(cap, token, options)}`);
await store.close();
process.exit(0);
