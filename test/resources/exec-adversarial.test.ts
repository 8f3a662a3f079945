import { spawn } from "node:child_process";
import { relative, resolve } from "node:path";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import {
  authorize,
  BudgetExhausted,
  CapabilityDenied,
  Expired,
  InvalidInput,
  narrow,
  NotACapability,
  restrict,
  revocable,
  Revoked,
  type Capability,
  type Grant,
} from "../../src/index.ts";
import type { ExecReach } from "../../src/resources/exec/runner.ts";
import { P, grantRoots, makeSandbox, type Sandbox } from "./exec-fixture.ts";
import { outsideOf, traceFs } from "./fs-trace.ts";

// Every spawn goes through this spy, so a denied attempt can be shown to start no process at all.
vi.mock("node:child_process", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:child_process")>();
  return { ...actual, spawn: vi.fn(actual.spawn) };
});

let s: Sandbox;
beforeAll(async () => {
  s = makeSandbox();
  // The first access loads agentcap's optional peers (the tracing API) from node_modules: the library starting, not a request's I/O, so it happens before any traced attempt.
  await run([P.echo, "warm"]);
  vi.mocked(spawn).mockClear();
});
afterAll(() => { s.cleanup(); });
afterEach(() => { vi.mocked(spawn).mockClear(); });

/** exec.run without its static types, for attempts that pass what the types forbid. */
const runLoose = (cap: unknown, argv: unknown, options: unknown): Promise<unknown> =>
  (s.exec.run as (c: unknown, a: unknown, o: unknown) => Promise<unknown>)(cap, argv, options);

const run = (argv: readonly string[], options: Record<string, unknown> = {}, cap: Capability<ExecReach> = s.mintCap()) =>
  runLoose(cap, argv, { cwd: s.work, ...options });

/** A capability that grants neither exec nor fs. */
const bare = () => narrow(s.mintCap(), { tools: ["nothing"] }) as unknown as Capability<ExecReach>;

/** Programs whose kind a denied run once told apart (missing, not regular, setuid, not executable), and a FIFO it once opened. */
const ORACLE_PROBES: readonly { readonly name: string; readonly program: () => string }[] = [
  { name: "a path that does not exist", program: () => `${s.outside}/no-such-program` },
  { name: "a data file", program: () => `${s.outside}/data.txt` },
  { name: "a directory", program: () => s.outside },
  { name: "a setuid program", program: () => `${s.outside}/suid` },
  { name: "a FIFO (opening it would release a writer blocked on it)", program: () => `${s.outside}/fifo` },
  { name: "the node binary through /proc", program: () => "/proc/self/exe" },
  { name: "a descriptor of the process", program: () => "/proc/self/fd/0" },
];

interface Attempt {
  readonly name: string;
  readonly attempt: () => Promise<unknown>;
  readonly error: abstract new (...args: never[]) => Error;
  /** What the message must match; a function when it names the sandbox's paths, made when the attempt runs. */
  readonly message: RegExp | (() => RegExp);
}

const attempts: readonly Attempt[] = [
  // Shells and command strings
  { name: "sh -c", attempt: () => run(["/bin/sh", "-c", `touch ${s.work}/marker-sh`]), error: CapabilityDenied, message: /does not grant running \["\/bin\/sh","-c",/ },
  { name: "the real shell, dash -c", attempt: () => run([P.sh, "-c", "id"]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "a whole command line as one string", attempt: () => runLoose(s.mintCap(), `/bin/echo hi; touch ${s.work}/marker-str`, { cwd: s.work }), error: InvalidInput, message: /argv must be an array of strings/ },
  { name: "the shell option", attempt: () => run([P.echo, "hi"], { shell: true }), error: InvalidInput, message: /shell: is not an option/ },
  { name: "env as a trampoline to a shell", attempt: () => run([P.env, "/bin/sh", "-c", "id"]), error: CapabilityDenied, message: /does not grant running/ },
  // Program names
  { name: "a relative program name (PATH search)", attempt: () => run(["echo", "hi"]), error: InvalidInput, message: /must be an absolute path; agentcap never searches PATH/ },
  { name: "a ./relative program", attempt: () => run(["./echo"]), error: InvalidInput, message: /absolute path/ },
  { name: "a program relative to a directory", attempt: () => run(["bin/echo"]), error: InvalidInput, message: /absolute path/ },
  { name: "a ~ program", attempt: () => run(["~/echo"]), error: InvalidInput, message: /absolute path/ },
  { name: "an empty argv", attempt: () => run([]), error: InvalidInput, message: /must name the program/ },
  { name: "a non-string argument", attempt: () => runLoose(s.mintCap(), [P.echo, 42], { cwd: s.work }), error: InvalidInput, message: /argv\.1/ },
  { name: "an object that stringifies to a path", attempt: () => runLoose(s.mintCap(), [{ toString: () => P.echo }], { cwd: s.work }), error: InvalidInput, message: /argv/ },
  { name: "an array-like object instead of an array", attempt: () => runLoose(s.mintCap(), { 0: P.echo, length: 1 }, { cwd: s.work }), error: InvalidInput, message: /argv must be an array of strings/ },
  { name: "more arguments than any program accepts", attempt: () => run([P.echo, ...Array.from({ length: 5000 }, () => "a")]), error: InvalidInput, message: /at most 4096 elements/ },
  { name: "an argument longer than the kernel accepts", attempt: () => run([P.echo, "a".repeat(200_000)]), error: InvalidInput, message: /argv\.1: an argument must be at most/ },
  { name: "a program that does not exist", attempt: () => run(["/usr/bin/definitely-not-here"]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "a granted program that does not exist", attempt: () => run([`${s.bin}/missing`]), error: InvalidInput, message: /does not exist/ },
  { name: "a directory as the program", attempt: () => run(["/usr/bin"]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "a granted directory as the program", attempt: () => run([`${s.bin}/dir`]), error: InvalidInput, message: /not a regular file/ },
  { name: "a trailing separator on the program", attempt: () => run([`${P.echo}/`]), error: InvalidInput, message: /ends with a separator/ },
  { name: "'..' after a file in the program path", attempt: () => run([`${P.echo}/../dash`]), error: CapabilityDenied, message: /does not grant running/ },
  // Symlinks and '..': both the name given and the real path must be granted, and a denial names only the former
  { name: "a symlink named like a granted program, pointing at a shell", attempt: () => run([`${s.bin}/echo`, "-c", "id"]), error: CapabilityDenied, message: () => new RegExp(`does not grant running \\["${s.bin}/echo","-c","id"\\] in ${s.work}$`) },
  { name: "a chain of symlinks ending at a shell", attempt: () => run([`${s.bin}/chain1`, "-c", "id"]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "'..' climbing from a granted directory to a shell", attempt: () => run(["/usr/bin/../bin/dash", "-c", "id"]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "'..' climbing out of the work directory to a shell", attempt: () => run([`${s.work}/${"../".repeat(relative("/", s.work).split("/").length)}usr/bin/dash`, "-c", "id"]), error: CapabilityDenied, message: /does not grant running/ },
  // Files the C library or the kernel would run in ways the grant did not mean
  { name: "a granted script without #! (would run under /bin/sh)", attempt: () => run([`${s.bin}/noshebang`]), error: InvalidInput, message: /neither a binary nor a #! script/ },
  { name: "a granted file that is not executable", attempt: () => run([`${s.bin}/noexec`]), error: InvalidInput, message: /not executable/ },
  { name: "a granted setuid program (could not be killed)", attempt: () => run([`${s.bin}/suid`]), error: InvalidInput, message: /setuid/ },
  { name: "a granted FIFO (must not hang)", attempt: () => run([`${s.bin}/fifo`]), error: InvalidInput, message: /not a regular file/ },
  // argv[0] and NUL bytes
  { name: "argv[0] spoofing through an argv0 option", attempt: () => run([P.echo, "hi"], { argv0: "/bin/sh" }), error: InvalidInput, message: /argv0: is not an option/ },
  { name: "a NUL byte in the program path", attempt: () => run([`${P.echo}\0/bin/sh`]), error: InvalidInput, message: /NUL/ },
  { name: "a NUL byte in an argument", attempt: () => run([P.echo, "a\0b"]), error: InvalidInput, message: /argv\.1.*NUL/ },
  { name: "a NUL byte in cwd", attempt: () => run([P.echo], { cwd: `${s.work}\0/etc` }), error: InvalidInput, message: /cwd.*NUL/ },
  // Argument patterns
  { name: "an argument to a program granted with no arguments", attempt: () => run([P.cat, "/etc/shadow"]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "extra arguments beyond the pattern", attempt: () => run([P.touch, `${s.work}/marker-a`, `${s.outside}/pwned`]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "an option smuggled before the patterned argument", attempt: () => run([P.touch, "--reference=/etc/passwd", `${s.work}/marker-a`]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "an argument outside the prefix", attempt: () => run([P.touch, `${s.outside}/marker-a`]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "an argument one character short of the prefix", attempt: () => run([P.touch, `${s.work}/marker`]), error: CapabilityDenied, message: /does not grant running/ },
  { name: "a case variant of the prefix", attempt: () => run([P.touch, `${s.work}/MARKER-a`]), error: CapabilityDenied, message: /does not grant running/ },
  // Environment
  { name: "LD_PRELOAD, configured but not granted", attempt: () => run([P.env], { env: ["LD_PRELOAD"] }), error: CapabilityDenied, message: /does not grant running/ },
  { name: "PATH, configured but not granted", attempt: () => run([P.env], { env: ["PATH"] }), error: CapabilityDenied, message: /does not grant running/ },
  { name: "a granted variable with a program whose rule grants none", attempt: () => run([P.echo], { env: ["GREETING"] }), error: CapabilityDenied, message: /does not grant running/ },
  { name: "HOME, which the application never configured", attempt: () => run([P.env], { env: ["HOME"] }), error: InvalidInput, message: /HOME is not configured/ },
  { name: "a name carrying its own value", attempt: () => run([P.env], { env: ["LD_PRELOAD=/tmp/evil.so"] }), error: InvalidInput, message: /without a value/ },
  { name: "env as an object of values", attempt: () => run([P.env], { env: { LD_PRELOAD: "/tmp/evil.so" } }), error: InvalidInput, message: /env/ },
  // Working directory
  { name: "cwd outside the grant", attempt: () => run([P.echo], { cwd: s.outside }), error: CapabilityDenied, message: /does not grant/ },
  { name: "cwd at the file-system root", attempt: () => run([P.echo], { cwd: "/" }), error: CapabilityDenied, message: /does not grant/ },
  { name: "cwd with '..' escaping the grant", attempt: () => run([P.echo], { cwd: `${s.work}/../outside` }), error: CapabilityDenied, message: /does not grant/ },
  { name: "cwd through a symlink escaping the grant", attempt: () => run([P.echo], { cwd: `${s.work}/escape` }), error: CapabilityDenied, message: () => new RegExp(`does not grant list on ${s.work}/escape;`) },
  { name: "a missing cwd below a symlink escaping the grant (no existence oracle)", attempt: () => run([P.echo], { cwd: `${s.work}/escape/no-such-dir` }), error: CapabilityDenied, message: () => new RegExp(`does not grant list on ${s.work}/escape/no-such-dir;`) },
  { name: "cwd allowed by the exec rule but not listable by the fs grant", attempt: () => run([P.pwd], { cwd: s.other }), error: CapabilityDenied, message: /must be listable through the capability's fs grant/ },
  { name: "a relative cwd", attempt: () => run([P.echo], { cwd: "." }), error: InvalidInput, message: /cwd must be an absolute path/ },
  { name: "a cwd that does not exist", attempt: () => run([P.echo], { cwd: `${s.work}/nope` }), error: InvalidInput, message: /does not exist/ },
  { name: "a file as cwd", attempt: () => run([P.echo], { cwd: `${s.work}/file.txt` }), error: InvalidInput, message: /not a directory/ },
  { name: "no options at all", attempt: () => runLoose(s.mintCap(), [P.echo], undefined), error: InvalidInput, message: /expected an object/ },
  // Limits
  { name: "a time limit above the resource's", attempt: () => run([P.sleep, "60"], { timeoutMs: 60_000 }), error: InvalidInput, message: /above this resource's limit/ },
  { name: "a negative output limit", attempt: () => run([P.echo], { maxOutputBytes: -1 }), error: InvalidInput, message: /maxOutputBytes/ },
  { name: "a non-numeric time limit", attempt: () => run([P.echo], { timeoutMs: "Infinity" }), error: InvalidInput, message: /timeoutMs/ },
  // The capability itself
  {
    name: "a revoked capability",
    attempt: () => {
      const r = revocable(s.mintCap());
      r.revoke("task cancelled");
      return run([P.echo, "hi"], {}, r.capability);
    },
    error: Revoked,
    message: /task cancelled/,
  },
  {
    name: "an expired capability",
    attempt: () => {
      const cap = restrict(s.mintCap(), { expiresAt: s.clock.now() + 1000 });
      s.clock.advance(2000);
      return run([P.echo, "hi"], {}, cap);
    },
    error: Expired,
    message: /expired/,
  },
  {
    name: "a single-use capability already used",
    attempt: () => {
      const cap = restrict(s.mintCap(), { maxUses: 1 });
      authorize(cap, { action: "fs.list", path: s.work });
      return run([P.echo, "hi"], {}, cap);
    },
    error: BudgetExhausted,
    message: /single-use/,
  },
  { name: "a narrower link that does not grant the program", attempt: () => run([P.cat], {}, narrow(s.mintCap(), { exec: [{ program: P.echo }], fs: s.grant.fs ?? [] })), error: CapabilityDenied, message: /link 1/ },
  { name: "a capability confined to another tenant", attempt: () => run([P.echo], { tenant: "mallory" }, restrict(s.mintCap(), { tenants: ["acme"] })), error: CapabilityDenied, message: /tenants acme, not mallory/ },
  { name: "a capability with no exec grant", attempt: () => run([P.echo], {}, narrow(s.mintCap(), { fs: s.grant.fs ?? [] }) as unknown as Capability<ExecReach>), error: CapabilityDenied, message: /grants no commands/ },
  // Oracles: a capability granting neither exec nor fs learns nothing about the host's files, and opens none
  ...ORACLE_PROBES.map((probe): Attempt => ({
    name: `with neither exec nor fs: ${probe.name}`,
    attempt: () => run([probe.program(), "-c", "id"], {}, bare()),
    error: CapabilityDenied,
    message: /grants no file access; the working directory must be listable/,
  })),
  ...ORACLE_PROBES.map((probe): Attempt => ({
    name: `with fs but no exec: ${probe.name}`,
    attempt: () => run([probe.program(), "-c", "id"], {}, narrow(s.mintCap(), { fs: s.grant.fs ?? [] }) as unknown as Capability<ExecReach>),
    error: CapabilityDenied,
    message: /does not grant running/,
  })),
  { name: "a forged capability", attempt: () => runLoose({ id: "root", grant: s.grant }, [P.echo], { cwd: s.work }), error: NotACapability, message: /capability issued by this kernel/ },
  { name: "an object inheriting from a capability", attempt: () => runLoose(Object.create(s.mintCap()), [P.echo], { cwd: s.work }), error: NotACapability, message: /capability/ },
  { name: "a structured clone of a capability", attempt: () => runLoose(structuredClone(s.mintCap()), [P.echo], { cwd: s.work }), error: NotACapability, message: /capability/ },
];

describe("exec: bypass attempts", () => {
  it("has at least 30 of them", () => {
    expect(attempts.length).toBeGreaterThanOrEqual(30);
  });

  it.each(attempts)("refuses $name, starting no process", async ({ attempt, error, message }) => {
    const trace = traceFs();
    let thrown: unknown;
    try {
      await attempt();
    } catch (e) {
      thrown = e;
    } finally {
      trace.stop();
    }
    expect(thrown).toBeInstanceOf(error);
    expect((thrown as Error).message).toMatch(typeof message === "function" ? message() : message);
    expect(spawn).not.toHaveBeenCalled();
    expect(s.markers()).toEqual([]);
    if (thrown instanceof CapabilityDenied) {
      // Not even a look-up outside what the capability reaches (ancestors of a granted path are on every way in).
      expect(outsideOf(trace.touches(), grantRoots(s))).toEqual([]);
    }
  });

  it("tells a capability without exec or fs the same thing whatever the program is, and opens none of them", async () => {
    const trace = traceFs();
    const told: string[] = [];
    try {
      for (const probe of ORACLE_PROBES) {
        const error = await run([probe.program(), "-c", "id"], {}, bare()).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(CapabilityDenied);
        told.push((error as Error).message.replace(/link 1 \([^)]*\)/, "link 1"));
      }
    } finally {
      trace.stop();
    }
    expect(new Set(told).size).toBe(1);
    expect(trace.touches()).toEqual([]);
  });

  it("the tracer sees the look-ups and the open of an allowed run (control)", async () => {
    const trace = traceFs();
    try {
      await expect(run([P.echo, "traced"])).resolves.toMatchObject({ stdout: "traced\n" });
    } finally {
      trace.stop();
    }
    expect(trace.touches()).toEqual(expect.arrayContaining([{ fn: "realpathSync.native", path: P.echo }, { fn: "openSync", path: P.echo }]));
  });

  it("charges no use for a denied run", async () => {
    const cap = restrict(s.mintCap(), { maxUses: 1 });
    await expect(run([P.echo], { cwd: s.outside }, cap)).rejects.toBeInstanceOf(CapabilityDenied);
    await expect(run([P.echo], { env: ["HOME"] }, cap)).rejects.toBeInstanceOf(InvalidInput);
    await expect(run([P.echo, "once"], {}, cap)).resolves.toMatchObject({ stdout: "once\n" });
    await expect(run([P.echo, "twice"], {}, cap)).rejects.toBeInstanceOf(BudgetExhausted);
    expect(spawn).toHaveBeenCalledTimes(1);
  });
});

describe("exec: what a run is never given", () => {
  // Variables of this process that Node, the C library or a program would act on if they reached the child.
  const INHERITED = [
    ["NODE_V8_COVERAGE", "/tmp/agentcap-coverage"],
    ["NODE_OPTIONS", "--require /tmp/evil.js"],
    ["LD_PRELOAD", "/tmp/evil.so"],
    ["PATH", "/tmp/evil-bin"],
  ] as const;

  it.each(INHERITED)("%s set in the application's environment does not reach a run that names no variables", async (name, value) => {
    const before = process.env[name];
    process.env[name] = value;
    try {
      await expect(run([P.env])).resolves.toMatchObject({ stdout: "" });
      await expect(run([P.env], { env: ["GREETING"] })).resolves.toMatchObject({ stdout: "GREETING=hello\n" });
    } finally {
      if (before === undefined) Reflect.deleteProperty(process.env, name);
      else process.env[name] = before;
    }
  });
});

describe("property: a denied run looks at nothing outside its grant, and is told in the caller's words", () => {
  const PROGRAMS = (): string[] => [
    P.echo, P.sh, P.env, "/bin/sh", "/bin/echo", "/usr/bin/../bin/echo", `${P.echo}/../dash`, "/proc/self/exe", "/proc/self/fd/1",
    `${s.bin}/echo`, `${s.bin}/echo-ok`, `${s.bin}/chain1`, `${s.bin}/mynode`, `${s.bin}/suid`, `${s.bin}/fifo`, `${s.bin}/missing`,
    `${s.outside}/fifo`, `${s.outside}/suid`, `${s.outside}/data.txt`, `${s.outside}/nope`, `${s.work}/escape/fifo`, `${s.work}/escape/suid`,
  ];
  const CWDS = (): string[] => [s.work, `${s.work}/sub`, `${s.work}/alias`, `${s.work}/escape`, `${s.work}/escape/nope`, `${s.work}/..`, s.outside, s.other, "/", "/proc/self/cwd"];
  const GRANTS = (): [string, Grant | null][] => [
    ["the sandbox's grant", null],
    ["neither exec nor fs", { tools: ["nothing"] }],
    ["fs only", { fs: s.grant.fs ?? [] }],
    ["exec only", { exec: s.grant.exec ?? [] }],
    ["one program", { exec: [{ program: P.echo, cwd: s.work }], fs: [{ path: s.work, ops: ["list"] }] }],
  ];
  const rootsOf = (grant: Grant) => [
    ...(grant.exec ?? []).flatMap((rule) => [rule.program, ...(rule.cwd === undefined ? [] : [rule.cwd])]),
    ...(grant.fs ?? []).map((rule) => rule.path),
  ];

  it("for any program, working directory and capability", async () => {
    let denials = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PROGRAMS()),
        fc.constantFrom(...CWDS()),
        fc.constantFrom(...GRANTS()),
        fc.constantFrom<string[]>([], ["-c", "id"], ["hi"]),
        async (program, cwd, [, grant], args) => {
          const cap = (grant === null ? s.mintCap() : narrow(s.mintCap(), grant)) as unknown as Capability<ExecReach>;
          vi.mocked(spawn).mockClear();
          const trace = traceFs();
          let thrown: unknown = null;
          try {
            await run([program, ...args], { cwd }, cap);
          } catch (e) {
            thrown = e;
          } finally {
            trace.stop();
          }
          if (!(thrown instanceof CapabilityDenied)) return;
          denials += 1;
          expect(spawn).not.toHaveBeenCalled();
          expect(outsideOf(trace.touches(), rootsOf(grant ?? s.grant))).toEqual([]);
          // Every path the denial names is one the caller wrote (made canonical lexically).
          const written = [resolve(program), resolve(cwd)];
          for (const named of `${thrown.message} ${thrown.details.because}`.match(/\/[^\s",;\]]*/g) ?? []) expect(written).toContain(named);
        },
      ),
      { numRuns: 300 },
    );
    expect(denials).toBeGreaterThan(100);
    expect(s.markers()).toEqual([]);
  });
});
