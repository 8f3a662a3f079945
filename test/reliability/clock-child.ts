/**
 * A verifier in a process whose wall clock can be stepped: `Date.now` is
 * replaced before agentcap loads (agentcap captures the clock when it
 * loads, as every process's wall clock is). Commands on stdin, one answer
 * line each on stdout:
 *   step <ms>             moves this process's clock by <ms> (negative: back)
 *   check <token>         verifies the token and checks a call of tool "a": allowed, or the error code
 *   revoke <token>        revokes the token, as its holder giving it up would
 */
import { createInterface } from "node:readline";

const realNow = Date.now.bind(Date);
let offset = 0;
Date.now = () => realNow() + offset;

const [storePath = "", publicKey = ""] = process.argv.slice(2);
const { AgentcapError, check } = await import("../../src/kernel/index.ts");
const { openSqliteTokenStore } = await import("../../src/token/sqlite-store.ts");
const { revokeToken, verify } = await import("../../src/token/token.ts");

const store = openSqliteTokenStore(storePath);
const publicKeys = { 1: publicKey };

const answer = async (line: string): Promise<string> => {
  const [command = "", arg = ""] = line.split(" ");
  try {
    switch (command) {
      case "step":
        offset += Number(arg);
        return "ok";
      case "check": {
        const decision = check(verify(arg, { publicKeys, store }), { action: "tool.call", tool: "a" });
        return decision.allowed ? "allowed" : decision.code;
      }
      case "revoke":
        await revokeToken(arg, { publicKeys, store, reason: "given up by a process whose clock stepped" });
        return "ok";
      default:
        return `unknown command ${command}`;
    }
  } catch (e) {
    if (e instanceof AgentcapError) return e.code;
    throw e;
  }
};

let queue = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  queue = queue.then(async () => {
    process.stdout.write(`${await answer(line)}\n`);
  });
});
process.stdout.write("ready\n");
