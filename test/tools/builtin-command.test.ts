import { mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { createExec } from "../../src/resources/exec/runner.ts";
import { commandTool } from "../../src/tools/builtin/command.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { memorySink } from "./memory-sink.ts";

const ECHO = realpathSync("/bin/echo");
const work = realpathSync(mkdtempSync(join(tmpdir(), "agentcap-cmd-")));
symlinkSync(ECHO, join(work, "echo-link"));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function setup() {
  const tool = commandTool(createExec());
  const mint = createMint({
    issuer: "t",
    policy: () => ({ tools: ["run_command"], exec: [{ program: ECHO, args: [{ any: true }], allowExtraArgs: true, cwd: work }], fs: [{ path: work, ops: ["list"] }] }),
  });
  const sink = memorySink();
  return { tool, cap: mint.issue({ id: "dev" }), sink, dispatcher: createDispatcher({ tools: [tool], audit: sink }) };
}

describe("run_command", () => {
  it("runs a granted program, with a capability for exactly that argv in that directory", async () => {
    const { dispatcher, cap, sink } = setup();
    await expect(dispatcher.call("run_command", { argv: [ECHO, "hello"], cwd: work }, cap)).resolves.toMatchObject({ exitCode: 0, stdout: "hello\n" });
    expect(sink.toolEvents()[0]?.decision.allowed).toBe(true);
  });

  it("matches needs on real paths, as the resource does", async () => {
    const { dispatcher, cap } = setup();
    await expect(dispatcher.call("run_command", { argv: [join(work, "echo-link"), "via link"], cwd: work }, cap)).resolves.toMatchObject({ stdout: "via link\n" });
  });

  it("denies a program the capability does not grant before anything runs", async () => {
    const { dispatcher, cap, sink } = setup();
    await expect(dispatcher.call("run_command", { argv: [realpathSync("/bin/sh"), "-c", "id"], cwd: work }, cap)).rejects.toThrow(CapabilityDenied);
    expect(sink.toolEvents()[0]?.request).toMatchObject({ action: "exec" });
    await expect(dispatcher.call("run_command", { argv: [ECHO], cwd: "/" }, cap)).rejects.toThrow(CapabilityDenied);
  });

  it("refuses a relative program or cwd as invalid input, naming the field", async () => {
    const { dispatcher, cap } = setup();
    await expect(dispatcher.call("run_command", { argv: ["echo", "x"], cwd: work }, cap)).rejects.toThrow(/argv\.0: the program must be an absolute path/);
    await expect(dispatcher.call("run_command", { argv: [ECHO], cwd: "tmp" }, cap)).rejects.toThrow(InvalidInput);
    await expect(dispatcher.call("run_command", { argv: ["/no/such/program"], cwd: work }, cap)).rejects.toThrow(/does not exist|cannot/);
  });
});
