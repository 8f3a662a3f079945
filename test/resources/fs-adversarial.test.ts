import fs from "node:fs";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  authorize,
  BudgetExhausted,
  CapabilityDenied,
  Expired,
  InvalidInput,
  LimitExceeded,
  narrow,
  NotACapability,
  restrict,
  revocable,
  Revoked,
  singleUse,
  type Capability,
  type FullReach,
} from "../../src/index.ts";
import { detectAnchor, identityAnchor, type Anchor } from "../../src/resources/fs/anchor.ts";
import { FileSystemError } from "../../src/index.ts";
import { lexicalPath } from "../../src/resources/fs/paths.ts";
import { makeFixture, snapshot, type Fixture } from "./fs-fixture.ts";
import { outsideOf, traceFs } from "./fs-trace.ts";

type ErrorClass = abstract new (...args: never[]) => Error;

interface Attempt {
  readonly name: string;
  /** Sets up whatever the attempt needs and returns the call to make. */
  readonly attempt: (f: Fixture) => () => unknown;
  readonly error: ErrorClass;
  /** For FileSystemError: the errno it must carry. */
  readonly errno?: string;
  /** The error comes from looking at the opened file, after authorization: some I/O is expected. */
  readonly afterOpen?: true;
}

/** The path the last attempt passed, as the caller wrote it: a denial must name it (made absolute), and nothing it resolved to. */
let given: string | null = null;
const giving = <T>(p: string, call: () => T): T => {
  given = p;
  return call();
};
/** Read through a function, so the reset before each attempt does not narrow what the attempt set. */
const givenPath = (): string | null => given;
const read = (p: string, cap?: (f: Fixture) => Capability<{ readonly fs: "read" }>) => (f: Fixture) => () => giving(p, () => f.fsys.read(cap?.(f) ?? f.cap, p));
const write = (p: string, data = "PWNED") => (f: Fixture) => () => giving(p, () => f.fsys.write(f.cap, p, data));
const append = (p: string) => (f: Fixture) => () => giving(p, () => f.fsys.append(f.cap, p, "PWNED"));
const list = (p: string) => (f: Fixture) => () => giving(p, () => f.fsys.list(f.cap, p));
const stat = (p: string) => (f: Fixture) => () => giving(p, () => f.fsys.stat(f.cap, p));
const mkdir = (p: string, recursive = false) => (f: Fixture) => () => giving(p, () => f.fsys.mkdir(f.cap, p, { recursive }));
const del = (p: string) => (f: Fixture) => () => giving(p, () => f.fsys.delete(f.cap, p));
/** A capability that may read the granted subtree but not list it. */
const readOnly = (f: Fixture) => narrow(f.cap, { fs: [{ path: f.granted, ops: ["read"] }] });
const abs = (relative: string) => (f: Fixture) => f.at(relative);

/** Each bypass attempt and the typed error it must get. Relative paths resolve against T/base. */
const ATTEMPTS: readonly Attempt[] = [
  // Escaping with .., separators and absolute paths
  { name: "relative .. out of the base", attempt: read("../outside/secret.txt"), error: CapabilityDenied },
  { name: ".. out of the granted subtree", attempt: read("granted/../../outside/secret.txt"), error: CapabilityDenied },
  { name: ".. into a sibling that is not granted", attempt: read("granted/../private/p.txt"), error: CapabilityDenied },
  { name: "absolute path outside", attempt: (f) => read(abs("outside/secret.txt")(f))(f), error: CapabilityDenied },
  { name: "/etc/passwd", attempt: read("/etc/passwd"), error: CapabilityDenied },
  { name: "repeated separators and .. ", attempt: read("ro/../granted/..//..//outside/secret.txt"), error: CapabilityDenied },
  { name: "trailing separator after escaping", attempt: read("granted//..//..//outside///secret.txt/"), error: CapabilityDenied },
  { name: "sibling directory sharing the granted prefix", attempt: read("granted-evil/x.txt"), error: CapabilityDenied },
  { name: "sibling file sharing a single-file grant's prefix", attempt: read("single.txt.bak"), error: CapabilityDenied },
  { name: "below a single-file grant and back out", attempt: read("single.txt/../private/p.txt"), error: CapabilityDenied },
  { name: "listing the parent of the granted subtree", attempt: list("granted/.."), error: CapabilityDenied },
  // Symbolic links inside the grant that lead outside
  { name: "directory link pointing outside", attempt: read("granted/out-link/secret.txt"), error: CapabilityDenied },
  { name: "file link pointing outside (absolute)", attempt: read("granted/secret-link"), error: CapabilityDenied },
  { name: "file link pointing outside (relative)", attempt: read("granted/rel-link"), error: CapabilityDenied },
  { name: "link to the parent, then into a sibling", attempt: read("granted/up/private/p.txt"), error: CapabilityDenied },
  { name: "stat through a link pointing outside", attempt: stat("granted/secret-link"), error: CapabilityDenied },
  { name: "list through a link pointing outside", attempt: list("granted/out-link"), error: CapabilityDenied },
  { name: "write through a dangling link pointing outside", attempt: write("granted/dangling-out"), error: CapabilityDenied },
  { name: "write below a dangling directory link pointing outside", attempt: write("granted/dangling-dir/f.txt"), error: CapabilityDenied },
  { name: "write a new file through a directory link", attempt: write("granted/out-link/new.txt"), error: CapabilityDenied },
  { name: "overwrite a file through a directory link", attempt: write("granted/out-link/secret.txt"), error: CapabilityDenied },
  { name: "append through a file link pointing outside", attempt: append("granted/secret-link"), error: CapabilityDenied },
  { name: "mkdir through a directory link", attempt: mkdir("granted/out-link/newdir"), error: CapabilityDenied },
  { name: "mkdir -p through a directory link", attempt: mkdir("granted/out-link/a/b", true), error: CapabilityDenied },
  { name: "mkdir -p that climbs out lexically", attempt: mkdir("granted/new/../../private/x", true), error: CapabilityDenied },
  { name: "mkdir -p of a link to a file outside (its parents are not looked for)", attempt: mkdir("granted/rel-link", true), error: CapabilityDenied },
  { name: "delete through a directory link", attempt: del("granted/out-link/secret.txt"), error: CapabilityDenied },
  { name: "delete through .. into a sibling", attempt: del("granted/../private/p.txt"), error: CapabilityDenied },
  { name: "write through the parent link", attempt: write("granted/up/private/p.txt"), error: CapabilityDenied },
  // Oracles: paths whose real path would tell the caller about the host (denied as written, looked at never)
  { name: "an open descriptor of the process", attempt: read("/proc/self/fd/0"), error: CapabilityDenied },
  { name: "a descriptor's link, to learn which file or socket it is", attempt: stat("/proc/self/fd/1"), error: CapabilityDenied },
  { name: "the application's working directory", attempt: read("/proc/self/cwd/package.json"), error: CapabilityDenied },
  { name: "the node binary", attempt: read("/proc/self/exe"), error: CapabilityDenied },
  { name: "a link's target in a directory the capability may not list", attempt: read("granted/secret-link", readOnly), error: CapabilityDenied },
  { name: "a dangling link's target in a directory the capability may not list", attempt: read("granted/dangling-out", readOnly), error: CapabilityDenied },
  { name: "a missing name below a link that leads out", attempt: read("granted/out-link/no-such-file", readOnly), error: CapabilityDenied },
  // Operations the grant does not give
  { name: "write in a read-only subtree", attempt: write("ro/new.txt"), error: CapabilityDenied },
  { name: "delete in a read-only subtree", attempt: del("ro/r.txt"), error: CapabilityDenied },
  { name: "mkdir in a read-only subtree", attempt: mkdir("ro/dir"), error: CapabilityDenied },
  {
    name: "read with a capability narrowed to a deeper subtree",
    attempt: read("granted/a.txt", (f) => narrow(f.cap, { fs: [{ path: f.at("base/granted/sub"), ops: ["read"] }] })),
    error: CapabilityDenied,
  },
  {
    name: "read with a list-only capability",
    attempt: (f) => {
      const listOnly = narrow(f.cap, { fs: [{ path: f.granted, ops: ["list"] }] });
      // @ts-expect-error a capability that cannot read does not type-check where read is required
      return () => f.fsys.read(listOnly, "granted/a.txt");
    },
    error: CapabilityDenied,
  },
  {
    name: "a tenant the capability is not confined to",
    attempt: (f) => () => f.fsys.read(restrict(f.cap, { tenants: ["acme"] }), "granted/a.txt", { tenant: "evil" }),
    error: CapabilityDenied,
  },
  {
    name: "no tenant on a tenant-confined capability",
    attempt: (f) => () => f.fsys.read(restrict(f.cap, { tenants: ["acme"] }), "granted/a.txt"),
    error: CapabilityDenied,
  },
  // Dead, used-up and fake capabilities
  {
    name: "an expired capability",
    attempt: (f) => {
      const cap = restrict(f.cap, { expiresAt: f.clock.now() + 1000 });
      f.clock.advance(1000);
      return () => f.fsys.read(cap, "granted/a.txt");
    },
    error: Expired,
  },
  {
    name: "a revoked capability",
    attempt: (f) => {
      const r = revocable(f.cap);
      r.revoke("task finished");
      return () => f.fsys.write(r.capability, "granted/a.txt", "PWNED");
    },
    error: Revoked,
  },
  {
    name: "a used-up single-use capability",
    attempt: (f) => {
      const once = singleUse(f.cap);
      // Its one use spent here, by the kernel itself: a read through the file system would finish its I/O during the attempt.
      const spent = authorize(once, { action: "fs.read", path: lexicalPath("granted/a.txt", f.fsys.baseDir) });
      if (!spent.allowed) throw new Error(`the fixture grants the read: ${spent.reason}`);
      return () => f.fsys.write(once, "granted/a.txt", "PWNED");
    },
    error: BudgetExhausted,
  },
  {
    name: "a look-alike object",
    attempt: (f) => {
      const fake: unknown = { id: f.cap.id, hash: f.cap.hash, grant: f.cap.grant };
      return () => f.fsys.read(fake as Capability<FullReach>, "granted/a.txt");
    },
    error: NotACapability,
  },
  { name: "a structured clone of a capability", attempt: (f) => () => f.fsys.read(structuredClone(f.cap), "granted/a.txt"), error: NotACapability },
  // Malformed input
  { name: "NUL byte to cut the path short", attempt: read("granted/a.txt\0.png"), error: InvalidInput },
  { name: "NUL byte alone", attempt: read("\0"), error: InvalidInput },
  { name: "empty path", attempt: read(""), error: InvalidInput },
  { name: "a number as the path", attempt: (f) => () => f.fsys.read(f.cap, 42 as unknown as string), error: InvalidInput },
  { name: "a URL object as the path", attempt: (f) => () => f.fsys.read(f.cap, new URL("file:///etc/passwd") as unknown as string), error: InvalidInput },
  { name: "a path longer than PATH_MAX", attempt: read(`granted/${"a/".repeat(2100)}x`), error: InvalidInput },
  { name: "data that is neither a string nor bytes", attempt: (f) => () => f.fsys.write(f.cap, "granted/a.txt", { toString: () => "PWNED" } as unknown as string), error: InvalidInput },
  { name: "options that are not an object", attempt: (f) => () => f.fsys.read(f.cap, "granted/a.txt", "acme" as never), error: InvalidInput },
  { name: "a tenant that is not a string", attempt: (f) => () => f.fsys.read(f.cap, "granted/a.txt", { tenant: 7 } as never), error: InvalidInput },
  { name: "write larger than maxWriteBytes", attempt: write("granted/big.txt", "x".repeat(1025)), error: LimitExceeded },
  { name: "multi-byte text larger than maxWriteBytes in UTF-8", attempt: write("granted/big.txt", "é".repeat(513)), error: LimitExceeded },
  // Spellings that stay inside: they get the OS's answer, never the outside file
  { name: "backslashes are part of a name, not separators", attempt: read("granted/..\\..\\outside\\secret.txt"), error: FileSystemError, errno: "ENOENT" },
  { name: "percent-encoded dots are part of a name", attempt: read("granted/%2e%2e/%2e%2e/outside/secret.txt"), error: FileSystemError, errno: "ENOENT" },
  { name: "a symbolic link loop", attempt: read("granted/loop-a"), error: FileSystemError, errno: "ELOOP" },
  { name: "reading a directory as a file", attempt: read("granted/sub"), error: FileSystemError, errno: "EISDIR" },
  { name: "a trailing separator on a file", attempt: read("granted/a.txt/"), error: FileSystemError, errno: "ENOTDIR" },
  { name: "a trailing /. on a file", attempt: read("granted/a.txt/."), error: FileSystemError, errno: "ENOTDIR" },
  { name: "a trailing separator on a link to a file", attempt: read("granted/in-link/"), error: FileSystemError, errno: "ENOTDIR" },
  { name: "writing a file named with a trailing separator", attempt: write("granted/a.txt/"), error: FileSystemError, errno: "EISDIR" },
  { name: "writing over a directory", attempt: write("granted/sub"), error: FileSystemError, errno: "EISDIR" },
  { name: "deleting a directory that is not empty", attempt: del("granted/sub"), error: FileSystemError, errno: "ENOTEMPTY" },
  { name: "reading a file larger than maxReadBytes", attempt: (f) => { fs.writeFileSync(f.at("base/granted/big.bin"), Buffer.alloc(2049)); return () => f.fsys.read(f.cap, "granted/big.bin"); }, error: LimitExceeded, afterOpen: true },
];

/** Every node:fs function that opens, reads, writes, creates or removes anything. Path resolution (realpath, readlink, lstat) is not among them. */
const IO_FUNCTIONS = [
  "openSync",
  "readSync",
  "writeSync",
  "fstatSync",
  "ftruncateSync",
  "mkdirSync",
  "rmdirSync",
  "unlinkSync",
  "rmSync",
  "opendirSync",
  "readdirSync",
  "readFileSync",
  "writeFileSync",
  "appendFileSync",
  "renameSync",
  "symlinkSync",
] as const;

/** The roots of the fixture's grant. */
const GRANT_ROOTS = (f: Fixture) => [f.granted, f.at("base/ro"), f.at("base/single.txt")];

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

it("has at least 30 bypass attempts that must be denied", () => {
  expect(ATTEMPTS.filter((a) => a.error === CapabilityDenied).length).toBeGreaterThanOrEqual(30);
});

describe.each([
  ["the platform's anchor", undefined],
  ["the portable identity anchor", identityAnchor],
] as [string, Anchor | undefined][])("bypass attempts with %s", (_label, anchor) => {
  let f: Fixture;
  beforeEach(() => {
    f = makeFixture(anchor, { maxReadBytes: 2048, maxWriteBytes: 1024 });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    f.cleanup();
  });

  it("the spies do see the I/O of an allowed request (control)", async () => {
    const spies = IO_FUNCTIONS.map((name) => vi.spyOn(fs, name));
    expect((await f.fsys.read(f.cap, "granted/a.txt")).toString()).toBe("A");
    await f.fsys.write(f.cap, "granted/new.txt", "N");
    const calls = IO_FUNCTIONS.filter((_, i) => (spies[i]?.mock.calls.length ?? 0) > 0);
    expect(calls).toEqual(expect.arrayContaining(["openSync", "readSync", "writeSync", "fstatSync"]));
  });

  it.each(ATTEMPTS.map((a) => [a.name, a] as const))("%s", async (_name, a) => {
    const call = a.attempt(f);
    const before = snapshot(f.root);
    given = null;
    const trace = traceFs();
    const spies = IO_FUNCTIONS.map((name) => vi.mocked(fs[name]));

    let thrown: unknown;
    try {
      await call();
    } catch (error) {
      thrown = error;
    }
    const calls = IO_FUNCTIONS.filter((_, i) => (spies[i]?.mock.calls.length ?? 0) > 0);
    const touches = trace.touches();
    trace.stop();
    vi.restoreAllMocks();

    expect(() => { throw thrown; }).toThrow(a.error);
    expect((thrown as Error).message.length).toBeGreaterThan(20);
    if (a.errno !== undefined) expect((thrown as FileSystemError).errno).toBe(a.errno);
    if (a.error !== FileSystemError && a.afterOpen === undefined) {
      // A denied or malformed request opened, read, wrote, created and removed nothing.
      expect(calls).toEqual([]);
    }
    if (thrown instanceof CapabilityDenied) {
      // Not even a look-up outside what the capability reaches (ancestors of a granted path are on every way in).
      expect(outsideOf(touches, GRANT_ROOTS(f))).toEqual([]);
      const p = givenPath();
      if (thrown.details.rule === "fs" && p !== null) {
        // Told in the caller's words: the path as given, made absolute, and nothing it resolved to.
        expect(thrown.message).toMatch(new RegExp(` on ${escapeRegExp(lexicalPath(p, f.base))}$`));
        expect(thrown.details.because).toMatch(new RegExp(` on ${escapeRegExp(lexicalPath(p, f.base))}$`));
      }
    }
    expect(snapshot(f.root)).toEqual(before);
  });
});

it.runIf(process.platform === "linux" && fs.existsSync("/proc/self/fd"))("the platform's anchor on Linux with /proc is the exact one", () => {
  expect(detectAnchor("/").kind).toBe("proc-fd");
});

describe("property: a denied request looks at nothing outside its grant, and is told in the caller's words", () => {
  /** Names that lead out (links, .., siblings, /proc), and a few that stay in. */
  const SEGMENTS = [
    "..", "..", ".", "", "out-link", "secret-link", "rel-link", "up", "private", "p.txt", "secret.txt", "e", "f.txt",
    "sub", "a.txt", "in-link", "dangling-out", "dangling-dir", "dangling-in", "loop-a", "new", "granted", "ro", "r.txt",
  ];
  const STARTS = ["granted/", "granted/", "", "ro/", "/proc/self/", "/proc/self/fd/", "/proc/self/cwd/", "/"];
  type Op = "read" | "write" | "append" | "list" | "stat" | "mkdir" | "delete";
  const OPS: readonly Op[] = ["read", "write", "append", "list", "stat", "mkdir", "delete"];

  it.each([["the platform's anchor", undefined], ["the identity anchor", identityAnchor]] as [string, Anchor | undefined][])("with %s", async (_label, anchor) => {
    const g = makeFixture(anchor);
    const roots = [g.granted, g.at("base/ro")];
    const cap = narrow(g.cap, { fs: [{ path: g.granted, ops: ["read", "write", "list", "delete"] }, { path: g.at("base/ro"), ops: ["read", "list"] }] });
    const call = (op: Op, p: string): Promise<unknown> => {
      switch (op) {
        case "read": return g.fsys.read(cap, p);
        case "write": return g.fsys.write(cap, p, "W");
        case "append": return g.fsys.append(cap, p, "W");
        case "list": return g.fsys.list(cap, p);
        case "stat": return g.fsys.stat(cap, p);
        case "mkdir": return g.fsys.mkdir(cap, p, { recursive: true });
        case "delete": return g.fsys.delete(cap, p);
      }
    };
    let denials = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...STARTS),
          fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 6 }),
          fc.constantFrom(...OPS),
          async (start, segments, op) => {
            const p = `${start}${segments.join("/")}`;
            if (p === "") return;
            const trace = traceFs();
            let thrown: unknown = null;
            try {
              await call(op, p);
            } catch (error) {
              thrown = error;
            } finally {
              trace.stop();
            }
            if (!(thrown instanceof CapabilityDenied)) return;
            denials += 1;
            expect(outsideOf(trace.touches(), roots)).toEqual([]);
            expect(thrown.message).toMatch(new RegExp(` on ${escapeRegExp(lexicalPath(p, g.base))}$`));
            expect(thrown.details.because).toMatch(new RegExp(` on ${escapeRegExp(lexicalPath(p, g.base))}$`));
          },
        ),
        { numRuns: 400 },
      );
      // The property said something: most generated requests are denied.
      expect(denials).toBeGreaterThan(100);
    } finally {
      g.cleanup();
    }
  });

  it("the tracer does see the look-ups of a request allowed as written (control)", async () => {
    const g = makeFixture();
    const trace = traceFs();
    try {
      await g.fsys.read(narrow(g.cap, { fs: [{ path: g.granted, ops: ["read"] }] }), "granted/secret-link").catch(() => undefined);
    } finally {
      trace.stop();
      g.cleanup();
    }
    expect(trace.touches().map((t) => t.fn)).toContain("realpathSync.native");
  });
});
