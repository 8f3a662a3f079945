import fs from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { CapabilityDenied, narrow } from "../../src/index.ts";
import { identityAnchor, procFdAnchor, type Anchor } from "../../src/resources/fs/anchor.ts";
import { FileSystemError } from "../../src/index.ts";
import { makeFixture, snapshot, type Fixture } from "./fs-fixture.ts";

/*
 * A symbolic link swapped in between the check and the use. The swap is
 * made from inside the first openSync call, which comes after the path was
 * resolved and authorized and before anything was opened: the worst moment.
 */

const realOpen = fs.openSync.bind(fs);

/** Makes the next openSync call run `swap` first. */
function swapOnOpen(swap: () => void): void {
  vi.spyOn(fs, "openSync").mockImplementationOnce((...args: Parameters<typeof fs.openSync>) => {
    swap();
    return realOpen(...args);
  });
}

const hasProc = process.platform === "linux" && fs.existsSync("/proc/self/fd");
const anchors: [string, Anchor][] = [["identity", identityAnchor]];
if (hasProc) anchors.unshift(["proc-fd", procFdAnchor]);

describe.each(anchors)("with the %s anchor", (_kind, anchor) => {
  let f: Fixture;
  afterEach(() => {
    vi.restoreAllMocks();
    f.cleanup();
  });

  /** Replaces T/base/granted/d with a link to T/outside, which holds e/f.txt too. */
  const dirToOutside = () => {
    fs.renameSync(f.at("base/granted/d"), f.at("base/granted/d-old"));
    fs.symlinkSync(f.outside, f.at("base/granted/d"));
  };

  /** Replaces T/base/granted/a.txt with a link to the secret. */
  const fileToSecret = () => {
    fs.unlinkSync(f.at("base/granted/a.txt"));
    fs.symlinkSync(f.at("outside/secret.txt"), f.at("base/granted/a.txt"));
  };

  const cases: [string, (f: Fixture) => unknown, () => void, typeof CapabilityDenied | typeof FileSystemError][] = [
    ["read through a directory swapped for a link", (f) => f.fsys.read(f.cap, "granted/d/e/f.txt"), () => { dirToOutside(); }, CapabilityDenied],
    ["overwrite through a directory swapped for a link", (f) => f.fsys.write(f.cap, "granted/d/e/f.txt", "PWNED"), () => { dirToOutside(); }, CapabilityDenied],
    ["create through a directory swapped for a link", (f) => f.fsys.write(f.cap, "granted/d/e/new.txt", "PWNED"), () => { dirToOutside(); }, CapabilityDenied],
    ["append through a directory swapped for a link", (f) => f.fsys.append(f.cap, "granted/d/e/f.txt", "PWNED"), () => { dirToOutside(); }, CapabilityDenied],
    ["mkdir through a directory swapped for a link", (f) => f.fsys.mkdir(f.cap, "granted/d/e/newdir"), () => { dirToOutside(); }, CapabilityDenied],
    ["delete through a directory swapped for a link", (f) => f.fsys.delete(f.cap, "granted/d/e/f.txt"), () => { dirToOutside(); }, CapabilityDenied],
    ["list through a directory swapped for a link", (f) => f.fsys.list(f.cap, "granted/d/e"), () => { dirToOutside(); }, CapabilityDenied],
    ["stat through a directory swapped for a link", (f) => f.fsys.stat(f.cap, "granted/d/e/f.txt"), () => { dirToOutside(); }, CapabilityDenied],
    ["read a file swapped for a link", (f) => f.fsys.read(f.cap, "granted/a.txt"), () => { fileToSecret(); }, FileSystemError],
    ["overwrite a file swapped for a link", (f) => f.fsys.write(f.cap, "granted/a.txt", "PWNED"), () => { fileToSecret(); }, FileSystemError],
  ];

  it.each(cases)("%s is refused and touches nothing outside", async (_name, call, swap, error) => {
    f = makeFixture(anchor);
    const outsideBefore = snapshot(f.outside);
    swapOnOpen(swap);
    let result: unknown;
    await expect((async () => (result = await call(f)))()).rejects.toThrow(error);
    expect(result).toBeUndefined();
    expect(snapshot(f.outside)).toEqual(outsideBefore);
  });

  it("a file swapped for a link is reported as ELOOP, and the secret is left alone", async () => {
    f = makeFixture(anchor);
    swapOnOpen(fileToSecret);
    await expect(f.fsys.write(f.cap, "granted/a.txt", "PWNED")).rejects.toThrow(expect.objectContaining({ errno: "ELOOP" }) as Error);
    expect(fs.readFileSync(f.at("outside/secret.txt"), "utf8")).toBe("SECRET");
  });

  it("a directory moved to another place inside the grant is judged where it really is", async () => {
    f = makeFixture(anchor);
    swapOnOpen(() => {
      fs.renameSync(f.at("base/granted/d"), f.at("base/granted/moved"));
      fs.symlinkSync(f.at("base/granted/moved"), f.at("base/granted/d"));
    });
    const read = async () => (await f.fsys.read(f.cap, "granted/d/e/f.txt")).toString();
    // The exact anchor sees the real path, which the grant allows; the portable one cannot prove it and refuses.
    if (anchor.kind === "proc-fd") expect(await read()).toBe("F");
    else await expect(read()).rejects.toThrow(CapabilityDenied);
  });

  it("a directory named with U+FFFD swapped for a link to a name whose bytes are not UTF-8 (it reads back the same) is refused unread", async () => {
    f = makeFixture(anchor);
    const dir = f.at("base/granted/\uFFFD");
    fs.mkdirSync(dir);
    fs.writeFileSync(`${dir}/a.txt`, "MINE");
    // A sibling inside the tree, which a capability for the U+FFFD directory does not reach.
    const raw = Buffer.concat([Buffer.from(f.at("base/granted/")), Buffer.from([0xff])]);
    fs.mkdirSync(raw);
    fs.writeFileSync(Buffer.concat([raw, Buffer.from("/a.txt")]), "OTHER");
    const only = narrow(f.cap, { fs: [{ path: dir, ops: ["read"] }] });
    swapOnOpen(() => {
      fs.renameSync(dir, f.at("base/granted/was-ufffd"));
      fs.symlinkSync(raw, Buffer.from(dir));
    });
    let read: Buffer | undefined;
    await expect((async () => (read = await f.fsys.read(only, "granted/\uFFFD/a.txt")))()).rejects.toThrow(CapabilityDenied);
    expect(read).toBeUndefined();
  });

  describe("a file read before, whose path is not resolved again while the same file is there", () => {
    const readText = async (p: string) => (await f.fsys.read(f.cap, p)).toString();

    it("is read as it is now, and once replaced by a link inside the grant, the link is followed", async () => {
      f = makeFixture(anchor);
      expect(await readText("granted/a.txt")).toBe("A");
      fs.writeFileSync(f.at("base/granted/a.txt"), "A2");
      expect(await readText("granted/a.txt")).toBe("A2");
      fs.unlinkSync(f.at("base/granted/a.txt"));
      fs.symlinkSync("sub/file.txt", f.at("base/granted/a.txt"));
      expect(await readText("granted/a.txt")).toBe("SUB");
    });

    it("is refused before anything is opened once a directory on its way leads outside, to a file of the same name", async () => {
      f = makeFixture(anchor);
      expect(await readText("granted/d/e/f.txt")).toBe("F");
      dirToOutside();
      const opens = vi.spyOn(fs, "openSync");
      await expect(readText("granted/d/e/f.txt")).rejects.toThrow(CapabilityDenied);
      expect(opens).not.toHaveBeenCalled();
    });

    it("is refused unread when its own directory was moved outside and linked back to its old place", async () => {
      f = makeFixture(anchor);
      expect(await readText("granted/d/e/f.txt")).toBe("F");
      // The same file, at the same path as written, but really outside the grant now.
      fs.renameSync(f.at("base/granted/d"), f.at("outside/moved-d"));
      fs.symlinkSync(f.at("outside/moved-d"), f.at("base/granted/d"));
      const reads = vi.spyOn(fs, "readSync");
      await expect(readText("granted/d/e/f.txt")).rejects.toThrow(CapabilityDenied);
      expect(reads).not.toHaveBeenCalled();
    });
  });
});

it.runIf(process.platform === "linux")("/proc/self/fd is available where these tests normally run", () => {
  expect(hasProc).toBe(true);
});
