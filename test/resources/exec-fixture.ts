import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createManualClock, createMint, type Capability, type FullReach, type Grant } from "../../src/index.ts";
import { createExec } from "../../src/resources/exec/runner.ts";

/*
 * A sandbox for the exec tests: a temporary tree, the real paths of the
 * programs used, one grant that names them, and helpers to watch processes.
 * Grants name real paths, because the resource matches against those.
 */

/** Real paths of the programs the tests run (on merged-/usr systems /bin/echo is really /usr/bin/echo). */
export const P = {
  echo: realpathSync("/bin/echo"),
  cat: realpathSync("/bin/cat"),
  env: realpathSync("/usr/bin/env"),
  sleep: realpathSync("/bin/sleep"),
  touch: realpathSync("/usr/bin/touch"),
  pwd: realpathSync("/bin/pwd"),
  true: realpathSync("/bin/true"),
  sh: realpathSync("/bin/sh"),
  node: realpathSync(process.execPath),
} as const;

export interface Sandbox {
  readonly root: string;
  /** Granted: fs list, and the cwd of most exec rules. */
  readonly work: string;
  /** Not granted to anything. */
  readonly outside: string;
  /** Inside the pwd rule's cwd, but not listable through the fs grant. */
  readonly other: string;
  /** Programs and links planted by the tests. */
  readonly bin: string;
  readonly grant: Grant;
  readonly clock: ReturnType<typeof createManualClock>;
  /** A fresh root capability of the grant, on the manual clock. */
  readonly mintCap: () => Capability<FullReach>;
  readonly exec: ReturnType<typeof createExec>;
  /** Names of marker files (marker-*) that some program created in `work`. */
  readonly markers: () => string[];
  readonly cleanup: () => void;
}

/** Builds the tree, programs and links, and the grant that names them. */
export function makeSandbox(): Sandbox {
  const root = realpathSync(mkdtempSync(join(tmpdir(), "agentcap-exec-")));
  const work = join(root, "work");
  const outside = join(root, "outside");
  const other = join(root, "other");
  const bin = join(root, "bin");
  for (const dir of [work, outside, other, bin, join(work, "sub")]) mkdirSync(dir);
  writeFileSync(join(work, "file.txt"), "not a directory\n");
  symlinkSync(outside, join(work, "escape"));
  symlinkSync(join(work, "sub"), join(work, "alias"));

  // A link named like a granted program but pointing at a shell, and links to granted programs.
  symlinkSync(P.sh, join(bin, "echo"));
  symlinkSync(join(bin, "chain2"), join(bin, "chain1"));
  symlinkSync(P.sh, join(bin, "chain2"));
  symlinkSync("/bin/echo", join(bin, "echo-ok"));
  symlinkSync(P.node, join(bin, "mynode"));
  // Executable text without "#!": the C library would run it with /bin/sh.
  writeFileSync(join(bin, "noshebang"), `touch ${work}/marker-noshebang\n`, { mode: 0o755 });
  copyFileSync(P.true, join(bin, "noexec"));
  chmodSync(join(bin, "noexec"), 0o644);
  copyFileSync(P.true, join(bin, "suid"));
  chmodSync(join(bin, "suid"), 0o4755);
  spawnSync("/usr/bin/mkfifo", [join(bin, "fifo")]);
  mkdirSync(join(bin, "dir"));
  // Outside every grant: a FIFO that a denied run must never open, and a setuid copy it must never inspect.
  spawnSync("/usr/bin/mkfifo", [join(outside, "fifo")]);
  copyFileSync(P.true, join(outside, "suid"));
  chmodSync(join(outside, "suid"), 0o4755);
  writeFileSync(join(outside, "data.txt"), "data\n");

  const grant: Grant = {
    fs: [{ path: work, ops: ["list"] }],
    exec: [
      { program: P.echo, cwd: work },
      { program: P.cat, args: [], cwd: work },
      { program: P.env, args: [], env: ["GREETING", "LANG"] },
      { program: P.sleep, args: [{ any: true }] },
      { program: P.touch, args: [{ prefix: `${work}/marker-` }] },
      { program: P.pwd, args: [], cwd: root },
      { program: P.true },
      // An interpreter grant reaches whatever the interpreter can do; the tests use it to observe processes.
      { program: P.node, args: ["-e", { any: true }], allowExtraArgs: true },
      // Links granted by name: they run only when their target is granted too.
      { program: join(bin, "echo-ok") },
      { program: join(bin, "mynode"), args: ["-e", { any: true }], allowExtraArgs: true },
      { program: join(bin, "echo") },
      // Granted, yet refused by canonicalization: the grant cannot make these safe to run.
      { program: join(bin, "noshebang") },
      { program: join(bin, "noexec") },
      { program: join(bin, "suid") },
      { program: join(bin, "fifo") },
      { program: join(bin, "dir") },
      { program: join(bin, "missing") },
    ],
  };
  const clock = createManualClock(Date.now());
  const mint = createMint({ issuer: "exec-tests", clock, policy: () => grant });
  const exec = createExec({
    env: { GREETING: "hello", LANG: "C", LD_PRELOAD: join(root, "evil.so"), PATH: "/usr/bin:/bin" },
    limits: { timeoutMs: 10_000 },
  });
  return {
    root,
    work,
    outside,
    other,
    bin,
    grant,
    clock,
    mintCap: () => mint.issue({ id: "exec-tester" }),
    exec,
    markers: () => readdirSync(work).filter((n) => n.startsWith("marker-")),
    cleanup: () => { rmSync(root, { recursive: true, force: true }); },
  };
}

/** Every path the sandbox's grant names: programs, working directories and fs subtrees. */
export function grantRoots(s: Sandbox): string[] {
  return [
    ...(s.grant.exec ?? []).flatMap((rule) => [rule.program, ...(rule.cwd === undefined ? [] : [rule.cwd])]),
    ...(s.grant.fs ?? []).map((rule) => rule.path),
  ];
}

/** Whether `pid` is a live process (a zombie counts as dead: it runs no code). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Polls `predicate` every 10 ms until it holds, failing after `ms`. */
export async function waitFor(predicate: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A node -e script that writes its pid (and its helpers' pids) to `file` in its cwd, then runs until killed. */
export function pidScript(file: string, helpers = 0): string {
  return `
    const { spawn } = require("node:child_process");
    const pids = [process.pid];
    for (let i = 0; i < ${helpers}; i++) pids.push(spawn("${P.sleep}", ["30"], { stdio: "ignore" }).pid);
    const fs = require("node:fs");
    fs.writeFileSync(${JSON.stringify(file + ".tmp")}, JSON.stringify(pids));
    fs.renameSync(${JSON.stringify(file + ".tmp")}, ${JSON.stringify(file)});
    setInterval(() => {}, 1000);
  `;
}

/** The pids a pidScript wrote, once it has written them. */
export async function pidsFrom(path: string): Promise<number[]> {
  await waitFor(() => existsSync(path));
  return JSON.parse(readFileSync(path, "utf8")) as number[];
}
