import { spawnSync } from "node:child_process";
import { mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CapabilityDenied, InvalidInput } from "../../src/kernel/errors.ts";
import { createMint } from "../../src/kernel/mint.ts";
import { createExec } from "../../src/resources/exec/runner.ts";
import { commandTool } from "../../src/tools/builtin/command.ts";
import { createDispatcher } from "../../src/tools/dispatcher.ts";
import { traceFs } from "../resources/fs-trace.ts";
import { memorySink } from "./memory-sink.ts";
import { narrow } from "../../src/index.ts";

const ECHO = realpathSync("/bin/echo");
const work = realpathSync(mkdtempSync(join(tmpdir(), "agentcap-cmd-")));
const outside = realpathSync(mkdtempSync(join(tmpdir(), "agentcap-cmd-outside-")));
symlinkSync(ECHO, join(work, "echo-link"));
symlinkSync(realpathSync("/bin/sh"), join(work, "sh-link"));
spawnSync("/usr/bin/mkfifo", [join(outside, "fifo")]);
writeFileSync(join(outside, "data.txt"), "data\n");
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

function setup() {
  const tool = commandTool(createExec());
  const any = { args: [{ any: true }], allowExtraArgs: true, cwd: work } as const;
  const mint = createMint({
    issuer: "t",
    policy: () => ({
      tools: ["run_command"],
      exec: [{ program: ECHO, ...any }, { program: join(work, "echo-link"), ...any }, { program: join(work, "sh-link"), ...any }],
      fs: [{ path: work, ops: ["list"] }],
    }),
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

  it("needs the program as written and its real path, as the resource checks both", async () => {
    const { dispatcher, cap } = setup();
    const planned = await dispatcher.plan("run_command", { argv: [join(work, "echo-link"), "via link"], cwd: work }, cap);
    expect(planned.needs).toEqual([
      { action: "exec", argv: [join(work, "echo-link"), "via link"], cwd: work, env: [] },
      { action: "fs.list", path: work },
      { action: "exec", argv: [ECHO, "via link"], cwd: work, env: [] },
    ]);
    await expect(dispatcher.call("run_command", { argv: [join(work, "echo-link"), "via link"], cwd: work }, cap)).resolves.toMatchObject({ stdout: "via link\n" });
  });

  it("denies a granted link to a program that is not granted, without saying where it leads", async () => {
    const { dispatcher, cap } = setup();
    const denied = dispatcher.call("run_command", { argv: [join(work, "sh-link"), "-c", "id"], cwd: work }, cap);
    await expect(denied).rejects.toThrow(CapabilityDenied);
    await expect(denied).rejects.toThrow(new RegExp(`does not grant running \\["${join(work, "sh-link")}","-c","id"\\] in ${work}$`));
  });

  it("tells a caller without exec or fs nothing about the host, looking at nothing", async () => {
    const { dispatcher, cap } = setup();
    const bare = narrow(cap, { tools: ["run_command"] });
    const programs = [join(outside, "no-such-program"), join(outside, "data.txt"), join(outside, "fifo"), outside, "/proc/self/exe", realpathSync("/bin/sh")];
    const trace = traceFs();
    const told: string[] = [];
    try {
      for (const program of programs) {
        const error = await dispatcher.call("run_command", { argv: [program], cwd: work }, bare).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(CapabilityDenied);
        told.push((error as Error).message.replace(program, "PROGRAM"));
      }
    } finally {
      trace.stop();
    }
    expect(new Set(told).size).toBe(1);
    expect(trace.touches()).toEqual([]);
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
    // A program outside the grant is denied, not looked for: whether it exists is none of the caller's business.
    await expect(dispatcher.call("run_command", { argv: ["/no/such/program"], cwd: work }, cap)).rejects.toThrow(CapabilityDenied);
  });
});
