import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CapabilityDenied, narrow, type Capability } from "../../src/index.ts";
import type { ExecReach } from "../../src/resources/exec/runner.ts";
import { P, makeSandbox, type Sandbox } from "./exec-fixture.ts";

/*
 * exec.run's capability parameter is typed by reach: a capability that cannot
 * possibly run a program and list its cwd does not compile. `tsc --noEmit`
 * checks the @ts-expect-error lines below; the runtime check still refuses
 * the same calls when the types are bypassed.
 */

let s: Sandbox;
beforeAll(() => { s = makeSandbox(); });
afterAll(() => { s.cleanup(); });

describe("exec: typed capability parameter", () => {
  it("accepts a root capability and one narrowed to exec and fs list", async () => {
    const narrowed = narrow(s.mintCap(), { exec: [{ program: P.echo }], fs: [{ path: s.work, ops: ["list", "read"] }] });
    const asParam: Capability<ExecReach> = narrowed;
    expect((await s.exec.run(asParam, [P.echo, "typed"], { cwd: s.work })).stdout).toBe("typed\n");
  });

  it("rejects at compile time a capability without exec, or without fs list", async () => {
    const noExec = narrow(s.mintCap(), { fs: [{ path: s.work, ops: ["list"] }] });
    const noList = narrow(s.mintCap(), { exec: [{ program: P.echo }], fs: [{ path: s.work, ops: ["read"] }] });
    const noFs = narrow(s.mintCap(), { exec: [{ program: P.echo }] });
    // @ts-expect-error: this capability reaches no exec
    await expect(s.exec.run(noExec, [P.echo], { cwd: s.work })).rejects.toBeInstanceOf(CapabilityDenied);
    // @ts-expect-error: this capability cannot list the cwd
    await expect(s.exec.run(noList, [P.echo], { cwd: s.work })).rejects.toBeInstanceOf(CapabilityDenied);
    // @ts-expect-error: this capability reaches no file system
    await expect(s.exec.run(noFs, [P.echo], { cwd: s.work })).rejects.toBeInstanceOf(CapabilityDenied);
  });

  it("types the output by encoding", async () => {
    const text: string = (await s.exec.run(s.mintCap(), [P.echo, "t"], { cwd: s.work })).stdout;
    const bytes: Uint8Array = (await s.exec.run(s.mintCap(), [P.echo, "b"], { cwd: s.work, encoding: "bytes" })).stdout;
    // @ts-expect-error: bytes output is not a string
    const wrong: string = (await s.exec.run(s.mintCap(), [P.echo], { cwd: s.work, encoding: "bytes" })).stdout;
    expect([text, bytes, typeof wrong]).toEqual(["t\n", new TextEncoder().encode("b\n"), "object"]);
  });
});
