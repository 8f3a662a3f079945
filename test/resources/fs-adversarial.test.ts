import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
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
import { makeFixture, snapshot, type Fixture } from "./fs-fixture.ts";

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

const read = (p: string, cap?: (f: Fixture) => Capability<{ readonly fs: "read" }>) => (f: Fixture) => () => f.fsys.read(cap?.(f) ?? f.cap, p);
const write = (p: string, data = "PWNED") => (f: Fixture) => () => f.fsys.write(f.cap, p, data);
const append = (p: string) => (f: Fixture) => () => f.fsys.append(f.cap, p, "PWNED");
const list = (p: string) => (f: Fixture) => () => f.fsys.list(f.cap, p);
const stat = (p: string) => (f: Fixture) => () => f.fsys.stat(f.cap, p);
const mkdir = (p: string, recursive = false) => (f: Fixture) => () => f.fsys.mkdir(f.cap, p, { recursive });
const del = (p: string) => (f: Fixture) => () => f.fsys.delete(f.cap, p);
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
  { name: "delete through a directory link", attempt: del("granted/out-link/secret.txt"), error: CapabilityDenied },
  { name: "delete through .. into a sibling", attempt: del("granted/../private/p.txt"), error: CapabilityDenied },
  { name: "write through the parent link", attempt: write("granted/up/private/p.txt"), error: CapabilityDenied },
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
      // The read is authorized (and the single use spent) before the promise settles.
      void f.fsys.read(once, "granted/a.txt");
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
    const spies = IO_FUNCTIONS.map((name) => vi.spyOn(fs, name));

    let thrown: unknown;
    try {
      await call();
    } catch (error) {
      thrown = error;
    }
    const calls = IO_FUNCTIONS.filter((_, i) => (spies[i]?.mock.calls.length ?? 0) > 0);
    vi.restoreAllMocks();

    expect(() => { throw thrown; }).toThrow(a.error);
    expect((thrown as Error).message.length).toBeGreaterThan(20);
    if (a.errno !== undefined) expect((thrown as FileSystemError).errno).toBe(a.errno);
    if (a.error !== FileSystemError && a.afterOpen === undefined) {
      // A denied or malformed request opened, read, wrote, created and removed nothing.
      expect(calls).toEqual([]);
    }
    expect(snapshot(f.root)).toEqual(before);
  });
});

it("the platform's anchor on Linux with /proc is the exact one", () => {
  if (process.platform !== "linux" || !fs.existsSync("/proc/self/fd")) return;
  expect(detectAnchor("/").kind).toBe("proc-fd");
});
