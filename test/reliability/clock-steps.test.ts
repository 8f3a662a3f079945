import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface, type Interface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { check } from "../../src/kernel/index.ts";
import { generateKeyPair } from "../../src/token/biscuit.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import type { TokenStore } from "../../src/token/store.ts";
import { attenuate, createTokenMint, toToken, verify } from "../../src/token/token.ts";

/*
 * Two processes verify the same tokens against one SQLite token store;
 * one of them has its wall clock stepped forward and back. Expiry is
 * decided by each verifier's own clock, so it is as right as that clock:
 * a clock ahead by Δ refuses a token up to Δ early (closed), a clock behind
 * by Δ accepts it up to Δ late; that is the documented tolerance, and the
 * other process is not moved by it. Revocation involves no clock: one
 * process's revocation is refused by the other at its next decision, and a
 * revocation made by a process whose clock runs ahead is kept until
 * everything it refuses has expired by any clock within a day of it.
 */

const HOUR = 3_600_000;
const dir = mkdtempSync(path.join(tmpdir(), "agentcap-clock-"));
const storePath = path.join(dir, "tokens.db");
const keys = generateKeyPair();
const publicKeys = { 1: keys.publicKey };
let store: TokenStore;
let child: ChildProcess;
let lines: Interface;

beforeAll(async () => {
  store = openSqliteTokenStore(storePath);
  child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./clock-child.ts", import.meta.url)), storePath, keys.publicKey], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  await next();
});

afterAll(async () => {
  child.kill();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const waiting: ((line: string) => void)[] = [];
const buffered: string[] = [];
function next(): Promise<string> {
  if (waiting.length === 0 && lines.listenerCount("line") === 0) {
    lines.on("line", (line) => {
      const w = waiting.shift();
      if (w === undefined) buffered.push(line);
      else w(line);
    });
  }
  const line = buffered.shift();
  return line === undefined ? new Promise((resolve) => waiting.push(resolve)) : Promise.resolve(line);
}

/** Sends one command to the stepped process and resolves with its answer. */
async function there(command: string): Promise<string> {
  child.stdin?.write(`${command}\n`);
  return next();
}

/** This process's verdict on a call of tool "a" with `token`. */
function here(token: string): string {
  try {
    const decision = check(verify(token, { publicKeys, store }), { action: "tool.call", tool: "a" });
    return decision.allowed ? "allowed" : decision.code;
  } catch (e) {
    return (e as { code: string }).code;
  }
}

const mint = () => createTokenMint({ issuer: "clock", signingKey: keys.privateKey, keyId: 1, policy: () => ({ tools: ["a"] }), store });

describe("a wall clock stepped in one of two processes verifying the same token", () => {
  it("expiry follows each verifier's own clock: early when ahead, late by at most the step when behind, the other process unmoved", async () => {
    const token = attenuate(toToken(mint().issue({ id: "alice" })), { tools: ["a"], expiresAt: Date.now() + 1500 }, { publicKeys });
    expect(here(token)).toBe("allowed");
    expect(await there(`check ${token}`)).toBe("allowed");
    await there(`step ${HOUR}`);
    expect(await there(`check ${token}`)).toBe("ERR_EXPIRED");
    expect(here(token)).toBe("allowed");
    await there(`step ${-2 * HOUR}`);
    await new Promise((resolve) => setTimeout(resolve, 1600));
    expect(here(token)).toBe("ERR_EXPIRED");
    // An hour behind, the stepped process accepts it for up to an hour more: the tolerance is the clock's error.
    expect(await there(`check ${token}`)).toBe("allowed");
    await there(`step ${HOUR}`);
    expect(await there(`check ${token}`)).toBe("ERR_EXPIRED");
  });

  it("revocation involves no clock: revoked here, refused there at once, whichever way its clock stepped", async () => {
    for (const [i, step] of [HOUR, -2 * HOUR, HOUR].entries()) {
      await there(`step ${step}`);
      const token = toToken(mint().issue({ id: `bob-${i}` }));
      expect(await there(`check ${token}`)).toBe("allowed");
      await store.revoke({ principal: `bob-${i}` }, { reason: "left" });
      expect(await there(`check ${token}`)).toBe("ERR_REVOKED");
    }
  });

  it("a revocation made by a process whose clock runs ahead is not dropped while the token is still live by the other's clock", async () => {
    const token = attenuate(toToken(mint().issue({ id: "carol" })), { tools: ["a"], expiresAt: Date.now() + HOUR }, { publicKeys });
    await there(`step ${2 * HOUR}`);
    // Two hours ahead, the token has expired there, so its revocation looks expired too; the store keeps it regardless.
    expect(await there(`revoke ${token}`)).toBe("ok");
    expect(here(token)).toBe("ERR_REVOKED");
    // A later revocation there prunes the list by its clock again.
    expect(await there(`revoke ${attenuate(token, { tools: ["a"] }, { publicKeys })}`)).toBe("ok");
    expect(here(token)).toBe("ERR_REVOKED");
    await there(`step ${-2 * HOUR}`);
  });
});
