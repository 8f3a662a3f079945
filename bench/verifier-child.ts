/**
 * A busy verifier in its own process, for the two-process test and the
 * revocation bench: verifies the tokens of a JSON file against a shared
 * store (SQLite file or Postgres schema), says "ready", then decides one
 * request after another on them, round robin, yielding to its event loop
 * every few decisions as a server between requests would. For each token it
 * reports, once it is refused: `denied <index> <first refused ns> <last allowed ns>`,
 * the start times of those decisions on the machine's monotonic clock
 * (process.hrtime, shared by every process). Ends when every token is refused
 * or on "stop".
 *
 * Usage: verifier-child.ts sqlite <file> | postgres <schema>, then the public key and the tokens file.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { check } from "../src/kernel/capability.ts";
import { openPostgresTokenStore } from "../src/token/postgres-store.ts";
import { openSqliteTokenStore } from "../src/token/sqlite-store.ts";
import { verify } from "../src/token/token.ts";

const [kind = "", where = "", publicKey = "", tokensFile = ""] = process.argv.slice(2);
const store = kind === "postgres" ? await openPostgresTokenStore({ connectionString: process.env.DATABASE_URL ?? "", schema: where }) : openSqliteTokenStore(where);
const tokens = JSON.parse(readFileSync(tokensFile, "utf8")) as string[];
const caps = tokens.map((token) => verify(token, { publicKeys: { 1: publicKey }, store }));
const request = { action: "tool.call", tool: "a" } as const;
const lastAllowed = caps.map(() => 0n);
const refused = caps.map(() => false);
let left = caps.length;
const state = { stopped: false };
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line === "stop") state.stopped = true;
});
console.log("ready");

const BATCH = 20;
while (left > 0 && !state.stopped) {
  for (let n = 0; n < BATCH; n++) {
    for (let i = 0; i < caps.length; i++) {
      if (refused[i] === true) continue;
      const started = process.hrtime.bigint();
      if (check(caps[i] as (typeof caps)[number], request).allowed) {
        lastAllowed[i] = started;
        continue;
      }
      refused[i] = true;
      left--;
      console.log(`denied ${i} ${started} ${lastAllowed[i] ?? 0n}`);
    }
  }
  await new Promise((resolve) => setImmediate(resolve));
}
await store.close();
process.exit(0);
