import fs from "node:fs";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CapabilityDenied, InvalidInput, LimitExceeded, narrow, restrict } from "../../src/index.ts";
import { FileSystemError } from "../../src/index.ts";
import { createFileSystem } from "../../src/resources/fs/file-system.ts";
import { makeFixture, type Fixture } from "./fs-fixture.ts";

let f: Fixture;
beforeEach(() => {
  f = makeFixture();
});
afterEach(() => {
  vi.restoreAllMocks();
  f.cleanup();
});

const text = (b: Buffer) => b.toString("utf8");

describe("allowed requests still work", () => {
  it.each([
    ["a relative path", "granted/a.txt", "A"],
    ["an absolute path", "", "A"],
    ["a path with ./ and repeated separators", "./granted//./a.txt", "A"],
    ["a path with .. that stays inside", "granted/sub/../a.txt", "A"],
    ["a .. that cancels a link lexically", "granted/out-link/../a.txt", "A"],
    ["a link that stays inside", "granted/in-link", "SUB"],
    ["the parent link, back into the grant", "granted/up/granted/a.txt", "A"],
    ["a single-file grant", "single.txt", "SINGLE"],
    ["a read-only subtree", "ro/r.txt", "RO"],
    ["an empty file", "granted/empty.txt", ""],
  ])("read: %s", async (_name, p, expected) => {
    expect(text(await f.fsys.read(f.cap, p === "" ? f.at("base/granted/a.txt") : p))).toBe(expected);
  });

  it("read returns a fresh, unpooled Buffer", async () => {
    const b = await f.fsys.read(f.cap, "granted/a.txt");
    expect(Buffer.isBuffer(b)).toBe(true);
    expect(b.buffer.byteLength).toBe(b.byteLength);
  });

  it("write creates, replaces (truncating) and accepts bytes", async () => {
    await f.fsys.write(f.cap, "granted/new.txt", "hello world");
    expect(fs.readFileSync(f.at("base/granted/new.txt"), "utf8")).toBe("hello world");
    await f.fsys.write(f.cap, "granted/new.txt", "bye");
    expect(fs.readFileSync(f.at("base/granted/new.txt"), "utf8")).toBe("bye");
    await f.fsys.write(f.cap, "granted/new.txt", new Uint8Array([104, 105]));
    expect(text(await f.fsys.read(f.cap, "granted/new.txt"))).toBe("hi");
  });

  it("append creates the file, then appends", async () => {
    await f.fsys.append(f.cap, "granted/log.txt", "one\n");
    await f.fsys.append(f.cap, "granted/log.txt", Buffer.from("two\n"));
    expect(fs.readFileSync(f.at("base/granted/log.txt"), "utf8")).toBe("one\ntwo\n");
  });

  it("write through a dangling link inside the grant creates its target and leaves the link", async () => {
    await f.fsys.write(f.cap, "granted/dangling-in", "via link");
    expect(fs.readFileSync(f.at("base/granted/created-through-link.txt"), "utf8")).toBe("via link");
    expect(fs.lstatSync(f.at("base/granted/dangling-in")).isSymbolicLink()).toBe(true);
  });

  it("mkdir creates one directory; mkdir -p creates the missing levels and accepts an existing one", async () => {
    await f.fsys.mkdir(f.cap, "granted/one");
    expect(fs.statSync(f.at("base/granted/one")).isDirectory()).toBe(true);
    await f.fsys.mkdir(f.cap, "granted/x/y/z", { recursive: true });
    expect(fs.statSync(f.at("base/granted/x/y/z")).isDirectory()).toBe(true);
    await f.fsys.mkdir(f.cap, "granted/x/y", { recursive: true });
  });

  it("mkdir of an existing directory without recursive says so", async () => {
    await expect(f.fsys.mkdir(f.cap, "granted/sub")).rejects.toThrow(FileSystemError);
    await expect(f.fsys.mkdir(f.cap, "granted/sub")).rejects.toThrow(/already exists \(EEXIST\)/);
  });

  it("mkdir -p is refused when any directory it would create is not allowed, even if the last one is", async () => {
    const cap = narrow(f.cap, { fs: [{ path: f.at("base/granted/p/q"), ops: ["write"] }] });
    await expect(f.fsys.mkdir(cap, "granted/p/q", { recursive: true })).rejects.toThrow(CapabilityDenied);
    expect(fs.existsSync(f.at("base/granted/p"))).toBe(false);
  });

  it("list returns the entries sorted, links reported as links", async () => {
    expect(await f.fsys.list(f.cap, "granted/sub")).toEqual([{ name: "file.txt", type: "file" }]);
    const entries = await f.fsys.list(f.cap, "granted");
    expect(entries.map((e) => e.name)).toEqual([...entries.map((e) => e.name)].sort());
    expect(entries).toContainEqual({ name: "out-link", type: "symlink" });
    expect(entries).toContainEqual({ name: "sub", type: "directory" });
    expect(Object.isFrozen(entries)).toBe(true);
  });

  it("stat describes files and directories and follows links that stay inside", async () => {
    expect(await f.fsys.stat(f.cap, "granted/a.txt")).toMatchObject({ type: "file", size: 1 });
    expect((await f.fsys.stat(f.cap, "granted/sub")).type).toBe("directory");
    expect(await f.fsys.stat(f.cap, "granted/in-link")).toMatchObject({ type: "file", size: 3 });
  });

  it("delete removes a file and an empty directory", async () => {
    await f.fsys.delete(f.cap, "granted/a.txt");
    await f.fsys.delete(f.cap, "granted/empty-dir");
    expect(fs.existsSync(f.at("base/granted/a.txt"))).toBe(false);
    expect(fs.existsSync(f.at("base/granted/empty-dir"))).toBe(false);
  });

  it("delete of a link removes the link, never the file it points to", async () => {
    await f.fsys.delete(f.cap, "granted/secret-link");
    expect(fs.existsSync(f.at("base/granted/secret-link"))).toBe(false);
    expect(fs.readFileSync(f.at("outside/secret.txt"), "utf8")).toBe("SECRET");
  });

  it("a tenant-confined capability works for its tenant", async () => {
    expect(text(await f.fsys.read(restrict(f.cap, { tenants: ["acme"] }), "granted/a.txt", { tenant: "acme" }))).toBe("A");
  });

  it("a capability with more reach than a method needs is accepted (types and run time)", async () => {
    const readList = narrow(f.cap, { fs: [{ path: f.granted, ops: ["read", "list"] }] });
    expect(text(await f.fsys.read(readList, "granted/a.txt"))).toBe("A");
    expect((await f.fsys.stat(readList, "granted/a.txt")).type).toBe("file");
  });

  it("a denial says which path and which link, in the caller's words: never where a link led", async () => {
    const denied = f.fsys.read(f.cap, "granted/secret-link");
    await expect(denied).rejects.toThrow(/^root capability \S+ \(minted for tester\) does not grant read on \S+$/);
    await expect(denied).rejects.toThrow(`does not grant read on ${f.at("base/granted/secret-link")}`);
    await expect(f.fsys.read(f.cap, "private/p.txt")).rejects.toThrow(`does not grant read on ${f.at("base/private/p.txt")}`);
  });

  it("a denial told in the caller's words is the same denial of the same link", async () => {
    const narrowed = narrow(f.cap, { fs: [{ path: f.granted, ops: ["read"] }] });
    const error = await f.fsys.read(narrowed, "granted/out-link/secret.txt").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CapabilityDenied);
    expect((error as CapabilityDenied).details).toEqual({
      capabilityId: narrowed.id,
      link: 0,
      linkId: f.cap.id,
      rule: "fs",
      because: `does not grant read on ${f.at("base/granted/out-link/secret.txt")}`,
    });
    expect((error as CapabilityDenied).message).toBe(`root capability ${f.cap.id} (minted for tester) does not grant read on ${f.at("base/granted/out-link/secret.txt")}`);
  });

  it.each([
    ["read", (p: string) => f.fsys.read(f.cap, p), "ENOTDIR"],
    ["stat", (p: string) => f.fsys.stat(f.cap, p), "ENOTDIR"],
    ["list", (p: string) => f.fsys.list(f.cap, p), "ENOTDIR"],
    ["delete", (p: string) => f.fsys.delete(f.cap, p), "ENOTDIR"],
    ["write", (p: string) => f.fsys.write(f.cap, p, "W"), "EISDIR"],
  ] as const)("%s of a file named with a trailing separator fails as the system would", async (_op, call, errno) => {
    for (const p of ["granted/a.txt/", "granted/a.txt/.", "granted/in-link/"]) {
      const error = await call(p).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FileSystemError);
      expect((error as FileSystemError).errno).toBe(errno);
    }
    expect(text(await f.fsys.read(f.cap, "granted/a.txt"))).toBe("A");
  });

  it("an allowed request is charged once; a denied one is not charged", async () => {
    const cap = restrict(f.cap, { maxUses: 2 });
    await expect(f.fsys.read(cap, "private/p.txt")).rejects.toThrow(CapabilityDenied);
    await f.fsys.read(cap, "granted/a.txt");
    await f.fsys.write(cap, "granted/a.txt", "B");
    await expect(f.fsys.read(cap, "granted/a.txt")).rejects.toThrow(/has used all 2/);
  });
});

describe("the OS's errors after authorization are typed and name the canonical path", () => {
  it.each([
    ["read a missing file", (x: Fixture) => x.fsys.read(x.cap, "granted/missing.txt"), "ENOENT", "read", "base/granted/missing.txt"],
    ["list a file", (x: Fixture) => x.fsys.list(x.cap, "granted/a.txt"), "ENOTDIR", "list", "base/granted/a.txt"],
    ["write below a missing directory", (x: Fixture) => x.fsys.write(x.cap, "granted/no/such.txt", "x"), "ENOENT", "write", "base/granted/no/such.txt"],
    ["stat a missing file", (x: Fixture) => x.fsys.stat(x.cap, "granted/missing.txt"), "ENOENT", "stat", "base/granted/missing.txt"],
    ["delete a missing file", (x: Fixture) => x.fsys.delete(x.cap, "granted/missing.txt"), "ENOENT", "delete", "base/granted/missing.txt"],
    ["read below a file", (x: Fixture) => x.fsys.read(x.cap, "granted/a.txt/x"), "ENOTDIR", "read", "base/granted/a.txt/x"],
  ])("%s", async (_name, call, errno, verb, where) => {
    let thrown: unknown;
    try {
      await call(f);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(FileSystemError);
    expect(thrown).toMatchObject({ errno, code: "ERR_FILE_SYSTEM" });
    expect((thrown as Error).message).toContain(`cannot ${verb} ${f.at(where)}: `);
    expect((thrown as Error).message).not.toContain("/proc/");
  });
});

describe("limits", () => {
  it("a read above maxReadBytes is refused with LimitExceeded naming the limit", async () => {
    const small = makeFixture(undefined, { maxReadBytes: 4 });
    try {
      fs.writeFileSync(small.at("base/granted/five.txt"), "12345");
      expect(text(await small.fsys.read(small.cap, "granted/a.txt"))).toBe("A");
      await expect(small.fsys.read(small.cap, "granted/five.txt")).rejects.toThrow(LimitExceeded);
      await expect(small.fsys.read(small.cap, "granted/five.txt")).rejects.toThrow(/5 bytes, more than maxReadBytes \(4\)/);
    } finally {
      small.cleanup();
    }
  });

  it("a write above maxWriteBytes is refused before anything is opened; exactly the limit is fine", async () => {
    const small = makeFixture(undefined, { maxWriteBytes: 4 });
    try {
      const open = vi.spyOn(fs, "openSync");
      await expect(small.fsys.append(small.cap, "granted/w.txt", new Uint8Array(5))).rejects.toThrow(LimitExceeded);
      await expect(small.fsys.write(small.cap, "granted/w.txt", "12345")).rejects.toThrow(expect.objectContaining({ limit: "maxWriteBytes" }) as Error);
      expect(open).not.toHaveBeenCalled();
      await small.fsys.write(small.cap, "granted/w.txt", "1234");
      expect(fs.readFileSync(small.at("base/granted/w.txt"), "utf8")).toBe("1234");
    } finally {
      small.cleanup();
    }
  });

  it("a listing above maxListEntries is refused", async () => {
    const small = makeFixture(undefined, { maxListEntries: 2 });
    try {
      expect(await small.fsys.list(small.cap, "granted/sub")).toHaveLength(1);
      await expect(small.fsys.list(small.cap, "granted")).rejects.toThrow(LimitExceeded);
    } finally {
      small.cleanup();
    }
  });
});

describe("createFileSystem", () => {
  it("returns a frozen object with no handle to reach", () => {
    const fsys = createFileSystem({ baseDir: f.base });
    expect(Object.isFrozen(fsys)).toBe(true);
    expect(Object.keys(fsys).sort()).toEqual(["append", "baseDir", "delete", "list", "mkdir", "openVerification", "read", "stat", "write"]);
    expect(fsys.baseDir).toBe(f.base);
  });

  it("resolves baseDir to its real path, so relative requests are canonical", async () => {
    fs.symlinkSync(f.base, f.at("base-link"));
    const fsys = createFileSystem({ baseDir: f.at("base-link") });
    expect(fsys.baseDir).toBe(f.base);
    expect(text(await fsys.read(f.cap, "granted/a.txt"))).toBe("A");
  });

  it("resolves relative paths against baseDir, never the working directory", async () => {
    const cwd = vi.spyOn(process, "cwd").mockReturnValue(f.outside);
    expect(text(await createFileSystem({ baseDir: f.granted }).read(f.cap, "a.txt"))).toBe("A");
    expect(cwd).not.toHaveBeenCalled();
  });

  it.each([
    ["a missing baseDir", () => ({ baseDir: f.at("nope") }), /does not exist/],
    ["a baseDir that is a file", () => ({ baseDir: f.at("base/single.txt") }), /is not a directory/],
    ["an empty baseDir", () => ({ baseDir: "" }), /baseDir/],
    ["a baseDir with NUL", () => ({ baseDir: `${f.base}\0` }), /must not contain NUL/],
    ["a negative limit", () => ({ baseDir: f.base, maxReadBytes: -1 }), /maxReadBytes/],
    ["a fractional limit", () => ({ baseDir: f.base, maxWriteBytes: 1.5 }), /maxWriteBytes/],
    ["an unknown option", () => ({ baseDir: f.base, followLinks: true }), /followLinks/],
  ])("refuses %s with InvalidInput", (_name, options, message) => {
    expect(() => createFileSystem(options() as never)).toThrow(InvalidInput);
    expect(() => createFileSystem(options() as never)).toThrow(message);
  });

  it("refuses a non-boolean recursive option, and ignores an inherited one", async () => {
    await expect(f.fsys.mkdir(f.cap, "granted/r", { recursive: "yes" } as never)).rejects.toThrow(InvalidInput);
    const polluted = Object.create({ recursive: true }) as { recursive?: boolean };
    await expect(f.fsys.mkdir(f.cap, "granted/m/n", polluted)).rejects.toThrow(FileSystemError);
    expect(fs.existsSync(f.at("base/granted/m"))).toBe(false);
  });
});

describe("case", () => {
  it("a differently cased spelling is judged by the name the file system really stores", async () => {
    fs.writeFileSync(f.at("probe"), "");
    const caseInsensitive = fs.existsSync(f.at("PROBE"));
    const read = async () => text(await f.fsys.read(f.cap, "GRANTED/a.txt"));
    // Case-insensitive: realpath returns the stored spelling, inside the grant. Case-sensitive: a different, ungranted name.
    if (caseInsensitive) expect(await read()).toBe("A");
    else await expect(read()).rejects.toThrow(CapabilityDenied);
  });
});
