import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Command } from "commander";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createProgram } from "../../src/cli/main.ts";
import { nastyText } from "./arbitraries.ts";
import type { CliOutcome } from "./cli-child.ts";

/*
 * Every command of `agentcap`, given hostile arguments with fast-check:
 * arbitrary strings, NUL bytes, control characters, values of a megabyte,
 * flags that do not exist, values that name odd files (devices that never
 * end, directories, nothing). Each command line ends with exit code 0 (it
 * did what was asked, or printed help) or a non-zero exit code and a
 * readable message on standard error: never a stack trace, never a
 * rejection nobody handled, never a hang.
 *
 * The command lines run in one child process (src/cli/main.ts, as
 * bin/agentcap runs it, with process.exit caught), in a temporary working
 * directory, and, when the test runs as root, as the user `nobody`: a
 * command line may name any path to write. A few run as processes of their
 * own too, for the exit codes and signals the shell sees (an OS argument can
 * hold no NUL byte and at most 128 KiB, so the harness reaches further).
 */

const RUNS = 300;
/** No command line here should take long: a hung one is killed after this, and the test fails. */
const HANG_MS = 20_000;

interface Leaf {
  readonly path: readonly string[];
  /** Its options' long flags, whether each takes a value, and whether the command refuses to run without it. */
  readonly options: readonly { readonly flag: string; readonly value: boolean; readonly mandatory: boolean }[];
  /** How many words it takes besides its options. */
  readonly positionals: number;
}

/** Every command and group of the program, with its options. */
function commands(program: Command, prefix: readonly string[] = []): Leaf[] {
  return program.commands.flatMap((c) => {
    const here = [...prefix, c.name()];
    const options = c.options.flatMap((o) => (o.long === undefined ? [] : [{ flag: o.long, value: o.required || o.optional, mandatory: o.mandatory }]));
    return [{ path: here, options, positionals: c.registeredArguments.length }, ...commands(c, here)];
  });
}

const LEAVES = commands(createProgram());

/** Values that mean something to some parser: numbers out of range, odd files, JSON, prototype keys, option look-alikes. */
const pointed = fc.constantFrom(
  "", " ", "-", "--", "-1", "0", "1e309", "NaN", "Infinity", "99999999999999999999999", "0x10", "1.5", "-0",
  "@", "@/dev/zero", "@/dev/null", "@/dev/urandom", "@/", "@/etc", "/dev/zero", "/dev/urandom", "/dev/null", "/", ".", "..", "/etc/shadow", "/proc/self/mem",
  "{}", "[]", "null", '{"__proto__":{"polluted":true}}', "__proto__", "constructor", "prototype",
  "postgres://", "postgres://nobody@127.0.0.1:1/x", "http://127.0.0.1:1/", "--help=x", "-h", "--version",
);

const value = fc.oneof({ arbitrary: nastyText, weight: 3 }, { arbitrary: pointed, weight: 3 }, { arbitrary: fc.string(), weight: 2 });

/**
 * A command line: a command's words; usually every option it requires and
 * its positional words, with hostile values, so the command runs past
 * commander's own checks; then more of its options, hostile words and
 * unknown flags, in any order.
 */
const commandLine: fc.Arbitrary<string[]> = fc
  .constantFrom(...LEAVES)
  .chain((leaf) => {
    const required = leaf.options.filter((o) => o.mandatory);
    const item = fc.oneof(
      ...(leaf.options.length === 0
        ? []
        : [fc.tuple(fc.constantFrom(...leaf.options), value).map(([o, v]) => (o.value ? [o.flag, v] : [o.flag])), fc.tuple(fc.constantFrom(...leaf.options), value).map(([o, v]) => [`${o.flag}=${v}`])]),
      value.map((v) => [v]),
      fc.string({ maxLength: 12 }).map((s) => [`--${s}`]),
    );
    const complete = fc.tuple(fc.array(value, { minLength: required.length, maxLength: required.length }), fc.array(value, { minLength: leaf.positionals, maxLength: leaf.positionals }));
    return fc
      .tuple(fc.option(complete, { freq: 4 }), fc.array(item, { maxLength: 4 }))
      .map(([base, items]) => [
        ...leaf.path,
        ...(base === null ? [] : [...required.flatMap((o, i) => [o.flag, base[0][i] as string]), ...base[1]]),
        ...items.flat(),
      ]);
  });

const here = path.dirname(fileURLToPath(import.meta.url));
const child = path.join(here, "cli-child.ts");
/** `main(process.argv)` from source, as bin/agentcap runs it from the build. */
const command = path.join(here, "serve-child.ts");
// By its file, as the harness runs in a directory of its own, where the package name resolves to nothing.
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
const asRoot = process.getuid?.() === 0;
const nobody = asRoot ? { uid: Number(execFileSync("id", ["-u", "nobody"], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", "nobody"], { encoding: "utf8" })) } : {};

let dir: string;
let harness: ChildProcess;
const waiting = new Map<number, (o: CliOutcome) => void>();
let nextId = 0;
let died = "";

/** Runs one command line in the harness; rejects if it takes longer than HANG_MS or the harness dies. */
function runLine(argv: readonly string[]): Promise<CliOutcome> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`hung for ${HANG_MS} ms: agentcap ${JSON.stringify(argv).slice(0, 500)}`));
    }, HANG_MS);
    waiting.set(id, (o) => {
      clearTimeout(timer);
      resolve(o);
    });
    if (harness.exitCode !== null || harness.signalCode !== null) reject(new Error(`the harness died: ${died}`));
    else harness.send({ id, argv });
  });
}

/** A stack frame, as Node prints them: what a person should never see for a bad argument. */
const STACK = /\n\s+at .+[(:]\d+/;

/** A control character other than tab and newline. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

/** The outcome is a success, or a refusal with a message and a non-zero exit code; never a throw or a stack trace. */
function judge(argv: readonly string[], o: CliOutcome): void {
  const shown = `agentcap ${JSON.stringify(argv).slice(0, 300)}\n${o.ended} ${o.code}\nstderr: ${o.stderr.slice(0, 600)}\n${o.thrown ?? ""}`;
  expect(o.ended, shown).not.toBe("threw");
  expect(o.stderr, shown).not.toMatch(STACK);
  expect(o.stdout, shown).not.toMatch(STACK);
  // What was typed comes back escaped: no escape sequence reaches the terminal.
  expect(o.stderr, shown).not.toMatch(CONTROL);
  expect(o.stdout, shown).not.toMatch(CONTROL);
  // A refusal says why on standard error; a verdict (NOT VERIFIED, denied) is the output itself, with its exit code.
  if (o.code !== 0) expect(`${o.stderr}${o.stdout}`.trim().length, shown).toBeGreaterThan(0);
  expect({}.constructor, shown).toBe(Object);
  expect("polluted" in {}, shown).toBe(false);
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "agentcap-cli-fuzz-"));
  if (asRoot) {
    chownSync(dir, nobody.uid as number, nobody.gid as number);
    chmodSync(dir, 0o700);
  }
  harness = spawn(process.execPath, ["--import", tsx, child], { cwd: dir, stdio: ["ignore", "pipe", "pipe", "ipc"], env: { ...process.env, HOME: dir }, ...nobody });
  harness.stderr?.setEncoding("utf8");
  harness.stderr?.on("data", (chunk: string) => (died = (died + chunk).slice(-4000)));
  harness.stdout?.resume();
  await new Promise<void>((resolve, reject) => {
    harness.once("exit", (code) => { reject(new Error(`the harness exited (${String(code)}) before it was ready: ${died}`)); });
    harness.on("message", (m: CliOutcome | { ready: true }) => {
      if ("ready" in m) resolve();
      else waiting.get(m.id)?.(m);
    });
  });
}, 60_000);

afterAll(() => {
  harness.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("agentcap command lines", () => {
  it(`cover every command: ${LEAVES.length} commands and groups`, () => {
    expect(LEAVES.map((l) => l.path.join(" "))).toEqual(expect.arrayContaining(["token mint", "token verify", "audit query", "audit explore", "serve", "revoke", "reinstate"]));
  });

  it("end in success or a readable refusal with a non-zero exit code, for hostile arguments", async () => {
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(commandLine, async (argv) => {
        const outcome = await runLine(argv);
        judge(argv, outcome);
        seen.add(`${outcome.code === 0 ? "succeeded" : "refused"}: ${(outcome.code === 0 ? outcome.stdout : outcome.stderr).split("\n")[0]?.replace(/["'`].*/, "").slice(0, 60) ?? ""}`);
      }),
      { numRuns: RUNS },
    );
    // The command lines reach the commands' own checks, past commander's: refusals of many kinds, and some successes.
    expect(seen.size).toBeGreaterThan(20);
    if (process.env.AGENTCAP_FUZZ_REPORT === "1") console.log([...seen].sort().join("\n"));
  }, 600_000);

  it("refuse every option of every command given a hostile value the same way", async () => {
    const values = ["\0", "\u001b[2J\u0007", "x".repeat(1_000_000), "@/dev/zero", "/dev/zero", "-1", "1e309", "{}", '{"__proto__":{"polluted":true}}'];
    for (const leaf of LEAVES) {
      for (const { flag, value: takes } of leaf.options) {
        if (!takes) continue;
        for (const v of values) judge([...leaf.path, flag, v], await runLine([...leaf.path, flag, v]));
      }
    }
  }, 600_000);

  it("exit non-zero with a message and no stack trace as a real process", () => {
    for (const argv of [["token", "inspect", "--token", "@/dev/zero", "--public-keys", "/dev/null"], ["audit", "query", "--limit", "-1"], ["revoke", "--principal", "\u001b[31m"], ["token", "mint", "--grant", "/dev/urandom"], ["serve", "--port", "x".repeat(100_000)], ["nonsense"]]) {
      const r = spawnSync(process.execPath, ["--import", tsx, command, ...argv], { cwd: dir, encoding: "utf8", timeout: HANG_MS, ...nobody });
      const shown = `agentcap ${JSON.stringify(argv).slice(0, 200)}: status ${String(r.status)} signal ${String(r.signal)}\n${r.stderr.slice(0, 600)}`;
      expect(r.signal, shown).toBeNull();
      expect(r.status, shown).not.toBe(0);
      expect(r.stderr.trim().length, shown).toBeGreaterThan(0);
      expect(r.stderr, shown).not.toMatch(STACK);
    }
  }, 120_000);
});
