/**
 * The second process of the Postgres test: verifies a token against the shared
 * store, says "ready", then checks it every 10 ms (from memory only: no query)
 * and reports "revoked <ms since ready>" once a revocation made elsewhere arrives.
 */
import { openPostgresTokenStore } from "../../src/token/postgres-store.ts";
import { verify } from "../../src/token/token.ts";
import { check } from "../../src/index.ts";

const [schema = "", token = "", publicKey = ""] = process.argv.slice(2);
const store = await openPostgresTokenStore({ connectionString: process.env.DATABASE_URL ?? "", schema });
const cap = verify(token, { publicKeys: { 1: publicKey }, store });
const readyAt = Date.now();
console.log("ready");
const timer = setInterval(() => {
  if (!check(cap, { action: "tool.call", tool: "a" }).allowed) {
    clearInterval(timer);
    console.log(`revoked ${Date.now() - readyAt}`);
    void store.close().then(() => process.exit(0));
  }
}, 10);
