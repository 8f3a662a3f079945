import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { CapabilityDenied, InvalidInput, narrow, restrict } from "../../src/index.ts";
import { createExec } from "../../src/resources/exec/runner.ts";
import { P, makeSandbox, type Sandbox } from "./exec-fixture.ts";

vi.mock("node:child_process", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:child_process")>();
  return { ...actual, spawn: vi.fn(actual.spawn) };
});

let s: Sandbox;
beforeAll(() => { s = makeSandbox(); });
afterAll(() => { s.cleanup(); });
afterEach(() => { vi.mocked(spawn).mockClear(); });

describe("exec: allowed runs", () => {
  it("runs a granted program and returns plain, frozen data", async () => {
    const result = await s.exec.run(s.mintCap(), [P.echo, "hello", "world"], { cwd: s.work });
    expect(result).toEqual({ exitCode: 0, signal: null, stdout: "hello world\n", stderr: "" });
    expect(Object.keys(result).sort()).toEqual(["exitCode", "signal", "stderr", "stdout"]);
    expect(Object.isFrozen(result)).toBe(true);
  });

  it("spawns the real path with an argv array, no shell, in its own process group, with only the scrubbed environment", async () => {
    await s.exec.run(s.mintCap(), [join(s.bin, "echo-ok"), "x"], { cwd: s.work });
    expect(spawn).toHaveBeenCalledTimes(1);
    const [file, args, options] = vi.mocked(spawn).mock.calls[0] as unknown as [string, string[], Record<string, unknown>];
    expect(file).toBe(P.echo);
    expect(args).toEqual(["x"]);
    expect(options).toMatchObject({ shell: false, detached: true, cwd: s.work });
    expect(Object.getPrototypeOf(options.env)).toBeNull();
    expect(Object.entries(options.env as object).filter(([, value]) => value !== undefined)).toEqual([]);
  });

  it("passes shell metacharacters as literal arguments", async () => {
    const marker = join(s.work, "marker-meta");
    const args = [`$(touch ${marker})`, `; touch ${marker}`, `\`touch ${marker}\``, "| cat", "&& id", `> ${marker}`, "*", "$HOME", "'\"", "\\n"];
    const { stdout } = await s.exec.run(s.mintCap(), [P.echo, ...args], { cwd: s.work });
    expect(stdout).toBe(`${args.join(" ")}\n`);
    expect(existsSync(marker)).toBe(false);
  });

  it("runs a granted link to a granted program (both the name and the real path are judged)", async () => {
    const { stdout } = await s.exec.run(s.mintCap(), [join(s.bin, "echo-ok"), "via link"], { cwd: s.work });
    expect(stdout).toBe("via link\n");
  });

  it("resolves '..' in the program path before judging it", async () => {
    const { stdout } = await s.exec.run(s.mintCap(), ["/usr/bin/../bin/echo", "dots"], { cwd: s.work });
    expect(stdout).toBe("dots\n");
  });

  it("gives the program its real path as argv[0], not the name it was called by", async () => {
    const { stdout } = await s.exec.run(s.mintCap(), [join(s.bin, "mynode"), "-e", "process.stdout.write(process.argv0)"], { cwd: s.work });
    expect(stdout).toBe(P.node);
  });

  it("passes no environment by default, not even PATH", async () => {
    expect(process.env.PATH).toBeDefined();
    const { stdout } = await s.exec.run(s.mintCap(), [P.env], { cwd: s.work });
    expect(stdout).toBe("");
  });

  it("passes exactly the named, granted variables, with the values the application configured", async () => {
    const { stdout } = await s.exec.run(s.mintCap(), [P.env], { cwd: s.work, env: ["GREETING", "LANG"] });
    expect(stdout.split("\n").filter(Boolean).sort()).toEqual(["GREETING=hello", "LANG=C"]);
  });

  it("ignores a polluted Object.prototype: no inherited variable, no shell", async () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto.LD_PRELOAD = "/tmp/evil.so";
    proto.shell = true;
    try {
      expect((await s.exec.run(s.mintCap(), [P.env], { cwd: s.work })).stdout).toBe("");
      expect((await s.exec.run(s.mintCap(), [P.echo, "$0"], { cwd: s.work })).stdout).toBe("$0\n");
    } finally {
      delete proto.LD_PRELOAD;
      delete proto.shell;
    }
  });

  it("runs in the resolved cwd, following links that stay inside the grant", async () => {
    expect((await s.exec.run(s.mintCap(), [P.pwd], { cwd: s.work })).stdout).toBe(`${s.work}\n`);
    expect((await s.exec.run(s.mintCap(), [P.pwd], { cwd: join(s.work, "alias") })).stdout).toBe(`${join(s.work, "sub")}\n`);
    expect((await s.exec.run(s.mintCap(), [P.pwd], { cwd: `${s.work}/sub/..` })).stdout).toBe(`${s.work}\n`);
  });

  it("writes input to stdin, as text or bytes", async () => {
    expect((await s.exec.run(s.mintCap(), [P.cat], { cwd: s.work, input: "line one\nline two\n" })).stdout).toBe("line one\nline two\n");
    const bytes = new Uint8Array([0, 1, 2, 0xff]);
    const { stdout } = await s.exec.run(s.mintCap(), [P.cat], { cwd: s.work, input: bytes, encoding: "bytes" });
    expect(stdout).toEqual(bytes);
  });

  it("closes stdin when there is no input", async () => {
    expect(await s.exec.run(s.mintCap(), [P.cat], { cwd: s.work })).toMatchObject({ exitCode: 0, stdout: "" });
  });

  it("returns raw bytes as plain Uint8Arrays with encoding: bytes", async () => {
    const script = "process.stdout.write(Buffer.from([0xc3, 0x28, 0, 255])); process.stderr.write('e')";
    const { stdout, stderr } = await s.exec.run(s.mintCap(), [P.node, "-e", script], { cwd: s.work, encoding: "bytes" });
    expect(stdout).toEqual(new Uint8Array([0xc3, 0x28, 0, 255]));
    expect(Object.getPrototypeOf(stdout)).toBe(Uint8Array.prototype);
    expect(stdout.buffer.byteLength).toBe(4);
    expect(stderr).toEqual(new TextEncoder().encode("e"));
  });

  it("reports a non-zero exit and stderr as a result, not an error", async () => {
    const result = await s.exec.run(s.mintCap(), [P.node, "-e", "console.error('bad input'); process.exit(3)"], { cwd: s.work });
    expect(result).toEqual({ exitCode: 3, signal: null, stdout: "", stderr: "bad input\n" });
  });

  it("reports a program ended by a signal", async () => {
    const result = await s.exec.run(s.mintCap(), [P.node, "-e", "process.kill(process.pid, 'SIGTERM')"], { cwd: s.work });
    expect(result).toMatchObject({ exitCode: null, signal: "SIGTERM" });
  });

  it("allows arguments that match the patterns, and extra ones where the rule says so", async () => {
    await s.exec.run(s.mintCap(), [P.touch, join(s.work, "marker-ok")], { cwd: s.work });
    expect(s.markers()).toEqual(["marker-ok"]);
    const { stdout } = await s.exec.run(s.mintCap(), [P.node, "-e", "console.log(process.argv.slice(1).join(','))", "a", "b"], { cwd: s.work });
    expect(stdout).toBe("a,b\n");
  });

  it("accepts a capability narrowed to exactly this run", async () => {
    const cap = narrow(s.mintCap(), {
      exec: [{ program: P.echo, args: ["narrow"], cwd: s.work }],
      fs: [{ path: s.work, ops: ["list"], subtree: false }],
    });
    expect((await s.exec.run(cap, [P.echo, "narrow"], { cwd: s.work })).stdout).toBe("narrow\n");
    await expect(s.exec.run(cap, [P.echo, "wide"], { cwd: s.work })).rejects.toBeInstanceOf(CapabilityDenied);
  });

  it("passes the tenant to both checks", async () => {
    const cap = restrict(s.mintCap(), { tenants: ["acme"] });
    expect((await s.exec.run(cap, [P.echo, "t"], { cwd: s.work, tenant: "acme" })).stdout).toBe("t\n");
    await expect(s.exec.run(cap, [P.echo, "t"], { cwd: s.work })).rejects.toThrow(/names no tenant/);
  });

  it("runs many calls concurrently without mixing their output", async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.exec.run(s.mintCap(), [P.echo, String(i)], { cwd: s.work })));
    expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 20 }, (_, i) => `${i}\n`));
  });
});

describe("exec: a program that cannot be started after all", () => {
  it("rejects with InvalidInput when the program vanishes between the check and the start", async () => {
    const actual = await vi.importActual<typeof import("node:child_process")>("node:child_process");
    vi.mocked(spawn).mockImplementationOnce(((_: string, args: string[], options: object) => actual.spawn(join(s.work, "vanished"), args, options)) as never);
    const outcome = s.exec.run(s.mintCap(), [P.echo, "x"], { cwd: s.work });
    await expect(outcome).rejects.toBeInstanceOf(InvalidInput);
    await expect(outcome).rejects.toThrow(/could not be started: spawn .*vanished ENOENT/);
  });

  it("rejects with InvalidInput when spawning fails at once", async () => {
    vi.mocked(spawn).mockImplementationOnce(() => {
      throw new Error("spawn E2BIG");
    });
    await expect(s.exec.run(s.mintCap(), [P.echo, "x"], { cwd: s.work })).rejects.toThrow(/could not be started: spawn E2BIG/);
  });
});

describe("exec: configuration", () => {
  it.each([
    ["a config that is not an object", 42, /expected an object/],
    ["an unknown setting", { inheritEnv: true }, /inheritEnv: is not a setting/],
    ["env that is not an object", { env: ["PATH"] }, /env: expected an object/],
    ["a bad variable name", { env: { "LD PRELOAD": "x" } }, /is not an environment variable name/],
    ["a variable value that is not a string", { env: { A: 1 } }, /env\.A: must be a string/],
    ["a variable value with a NUL byte", { env: { A: "a\0b" } }, /without NUL/],
    ["an unknown limit", { limits: { maxCpuMs: 5 } }, /maxCpuMs: is not a limit/],
    ["a zero time limit", { limits: { timeoutMs: 0 } }, /timeoutMs: must be a positive whole number/],
    ["a fractional output limit", { limits: { maxOutputBytes: 1.5 } }, /maxOutputBytes: must be a positive whole number/],
    ["a time limit too large for a timer", { limits: { timeoutMs: 2 ** 31 } }, /timeoutMs/],
  ])("refuses %s with InvalidInput", (_, config, message) => {
    expect(() => createExec(config as never)).toThrow(InvalidInput);
    expect(() => createExec(config as never)).toThrow(message);
  });

  it("never reads process.env for values", async () => {
    process.env.AGENTCAP_SECRET = "s3cret";
    try {
      const exec = createExec();
      const cap = narrow(s.mintCap(), { exec: [{ program: P.env, args: [], env: ["AGENTCAP_SECRET"] }], fs: s.grant.fs ?? [] });
      await expect(exec.run(cap, [P.env], { cwd: s.work, env: ["AGENTCAP_SECRET"] })).rejects.toThrow(/AGENTCAP_SECRET is not configured/);
    } finally {
      delete process.env.AGENTCAP_SECRET;
    }
  });
});
