import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMint, Expired, forSeconds, LimitExceeded, narrow, restrict, revocable, Revoked } from "../../src/index.ts";
import { openSqliteTokenStore } from "../../src/token/sqlite-store.ts";
import { P, isAlive, makeSandbox, pidScript, pidsFrom, waitFor, type Sandbox } from "./exec-fixture.ts";

/*
 * A started program must stop when a limit is reached or when its authority
 * ends, and so must everything it started: each test records the pids the
 * program wrote and checks they are gone once the call has rejected.
 */

let s: Sandbox;
beforeAll(() => { s = makeSandbox(); });
afterAll(() => { s.cleanup(); });

let n = 0;
/** A fresh pid-file path in the work directory, and the node argv that fills it and then runs forever. */
function longRunner(helpers = 0): { file: string; argv: string[] } {
  const file = join(s.work, `pids-${n++}.json`);
  return { file, argv: [P.node, "-e", pidScript(file, helpers)] };
}

async function expectAllDead(pids: readonly number[]): Promise<void> {
  // SIGKILL has been sent to the group before the call settles; helpers may need a moment to die and be reaped.
  await waitFor(() => pids.every((pid) => !isAlive(pid)), 2000);
}

describe("exec: limits", () => {
  it("kills the program and its helpers at the time limit, and rejects with LimitExceeded(timeoutMs)", async () => {
    const { file, argv } = longRunner(2);
    const started = Date.now();
    // Long enough for node to start and write its pids on a loaded machine.
    const outcome = s.exec.run(s.mintCap(), argv, { cwd: s.work, timeoutMs: 2000 });
    const pids = await pidsFrom(file);
    expect(pids).toHaveLength(3);
    const error = await outcome.then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(LimitExceeded);
    expect(error).toMatchObject({ limit: "timeoutMs", message: expect.stringMatching(/time limit of 2000 ms/) as unknown });
    expect(Date.now() - started).toBeLessThan(8000);
    await expectAllDead(pids);
  });

  it("kills helpers left behind when the program exits by itself", async () => {
    const file = join(s.work, "orphans.json");
    const script = `
      const { spawn } = require("node:child_process");
      const helper = spawn("${P.sleep}", ["30"], { stdio: "ignore" });
      require("node:fs").writeFileSync(${JSON.stringify(file)}, JSON.stringify([helper.pid]));
      helper.unref();
    `;
    const result = await s.exec.run(s.mintCap(), [P.node, "-e", script], { cwd: s.work });
    expect(result.exitCode).toBe(0);
    await expectAllDead(await pidsFrom(file));
  });

  it("kills the program at the output limit, counting stdout and stderr together", async () => {
    const script = "const c = 'x'.repeat(4096); for (;;) { process.stdout.write(c); process.stderr.write(c); }";
    const outcome = s.exec.run(s.mintCap(), [P.node, "-e", script], { cwd: s.work, maxOutputBytes: 64 * 1024 });
    await expect(outcome).rejects.toBeInstanceOf(LimitExceeded);
    await expect(outcome).rejects.toMatchObject({ limit: "maxOutputBytes" });
  });

  it("keeps output that is exactly at the limit", async () => {
    const { stdout } = await s.exec.run(s.mintCap(), [P.node, "-e", "process.stdout.write('y'.repeat(1000))"], { cwd: s.work, maxOutputBytes: 1000 });
    expect(stdout).toHaveLength(1000);
  });

  it.runIf(process.platform === "linux")("kills the program when its resident memory passes the limit", async () => {
    const script = "const keep = []; setInterval(() => keep.push(Buffer.alloc(16 << 20, 1)), 5);";
    const outcome = s.exec.run(s.mintCap(), [P.node, "-e", script], { cwd: s.work, maxMemoryBytes: 200 << 20 });
    await expect(outcome).rejects.toBeInstanceOf(LimitExceeded);
    await expect(outcome).rejects.toMatchObject({ limit: "maxMemoryBytes" });
  });

  it.runIf(process.platform === "linux")("lets a program under its memory limit finish", async () => {
    const result = await s.exec.run(s.mintCap(), [P.echo, "small"], { cwd: s.work, maxMemoryBytes: 200 << 20 });
    expect(result.stdout).toBe("small\n");
  });
});

describe("exec: authority ending mid-run", () => {
  it("kills the program and its helpers when the capability is revoked, and rejects with Revoked", async () => {
    const { capability, revoke } = revocable(s.mintCap());
    const { file, argv } = longRunner(1);
    const outcome = s.exec.run(capability, argv, { cwd: s.work });
    const pids = await pidsFrom(file);
    expect(pids.every(isAlive)).toBe(true);
    revoke("the task was cancelled");
    await expect(outcome).rejects.toBeInstanceOf(Revoked);
    await expect(outcome).rejects.toThrow(/the task was cancelled/);
    await expectAllDead(pids);
  });

  it("kills the program when its principal is revoked in the application's token store, and rejects with Revoked", async () => {
    const store = openSqliteTokenStore(":memory:");
    const mint = createMint({ issuer: "exec-tests", policy: () => s.grant, revocations: store });
    const { file, argv } = longRunner(1);
    const outcome = s.exec.run(mint.issue({ id: "leaver" }), argv, { cwd: s.work });
    const pids = await pidsFrom(file);
    expect(pids.every(isAlive)).toBe(true);
    await store.revoke({ principal: "leaver" }, { reason: "left the company" });
    await expect(outcome).rejects.toBeInstanceOf(Revoked);
    await expect(outcome).rejects.toThrow(/left the company/);
    await expectAllDead(pids);
    await store.close();
  });

  it("reacts to revoking an ancestor of a narrowed capability", async () => {
    const parent = revocable(s.mintCap());
    const child = narrow(parent.capability, { exec: [{ program: P.node, args: ["-e", { any: true }] }], fs: s.grant.fs ?? [] });
    const { file, argv } = longRunner();
    const outcome = s.exec.run(child, argv, { cwd: s.work });
    const pids = await pidsFrom(file);
    parent.revoke();
    await expect(outcome).rejects.toMatchObject({ code: "ERR_REVOKED", details: { link: 1 } });
    await expectAllDead(pids);
  });

  it("kills the program when the capability expires on its mint's clock, and rejects with Expired", async () => {
    const cap = restrict(s.mintCap(), { expiresAt: s.clock.now() + 300 });
    const { file, argv } = longRunner();
    const outcome = s.exec.run(cap, argv, { cwd: s.work });
    const pids = await pidsFrom(file);
    s.clock.advance(1000);
    await expect(outcome).rejects.toBeInstanceOf(Expired);
    await expect(outcome).rejects.toMatchObject({ details: { link: 1, linkId: cap.id, rule: "expiresAt" } });
    await expectAllDead(pids);
  });

  it("keeps running past the first timer while an injected clock has not reached the expiry", async () => {
    const cap = restrict(s.mintCap(), { expiresAt: s.clock.now() + 50 });
    const result = await s.exec.run(cap, [P.sleep, "0.3"], { cwd: s.work });
    expect(result.exitCode).toBe(0);
  });

  it("expires on the wall clock too", async () => {
    const mint = createMint({ issuer: "wall", policy: () => s.grant });
    const cap = forSeconds(mint.issue({ id: "wall-clock" }), 0.5);
    const started = Date.now();
    await expect(s.exec.run(cap, [P.sleep, "10"], { cwd: s.work })).rejects.toBeInstanceOf(Expired);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
