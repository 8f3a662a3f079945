import fs from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { FileSystemError, InvalidInput } from "../../src/index.ts";
import { identityAnchor, procFdAnchor, type Anchor } from "../../src/resources/fs/anchor.ts";
import { createFileSystem } from "../../src/resources/fs/file-system.ts";
import { makeFixture, snapshot, type Fixture } from "./fs-fixture.ts";

/*
 * A hard link is a second name for one file. Made inside the granted tree to
 * a file outside it (T/outside/secret.txt here), it passes every path check:
 * its path, real path and /proc/self/fd name all lie inside the grant. With
 * refuseHardLinks, a file with more than one link is refused on the
 * descriptor (or entry) actually acted on.
 */

let f: Fixture;
afterEach(() => {
  vi.restoreAllMocks();
  f.cleanup();
});

/** A hard link at T/base/granted/`name` to the secret outside the grant. */
const linkSecret = (name = "granted/linked.txt") => {
  fs.linkSync(f.at("outside/secret.txt"), f.at(`base/${name}`));
  return name;
};

const emlink = expect.objectContaining({ errno: "EMLINK", message: expect.stringMatching(/more than one hard link.*refuseHardLinks/) as string }) as Error;

describe("without refuseHardLinks (the default)", () => {
  it("a hard link inside the grant reads and writes the file outside it: what the option is for", async () => {
    f = makeFixture();
    const name = linkSecret();
    expect((await f.fsys.read(f.cap, name)).toString()).toBe("SECRET");
    await f.fsys.write(f.cap, name, "CHANGED");
    expect(fs.readFileSync(f.at("outside/secret.txt"), "utf8")).toBe("CHANGED");
  });
});

describe("with refuseHardLinks", () => {
  const refusing = (anchor?: Anchor) => makeFixture(anchor, { refuseHardLinks: true });

  it("refuses to read, write, append to or stat a hard link to a file outside the grant, and leaves that file as it was", async () => {
    f = refusing();
    const name = linkSecret();
    const outside = snapshot(f.outside);
    await expect(f.fsys.read(f.cap, name)).rejects.toThrow(emlink);
    await expect(f.fsys.write(f.cap, name, "PWNED")).rejects.toThrow(emlink);
    await expect(f.fsys.write(f.cap, name, "")).rejects.toThrow(emlink);
    await expect(f.fsys.append(f.cap, name, "PWNED")).rejects.toThrow(emlink);
    await expect(f.fsys.stat(f.cap, name)).rejects.toThrow(emlink);
    // Not truncated either: the check comes before anything is written.
    expect(snapshot(f.outside)).toEqual(outside);
  });

  it("names the caller's path in the error, never the file's other name", async () => {
    f = refusing();
    const name = linkSecret();
    const error = await f.fsys.read(f.cap, name).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FileSystemError);
    expect((error as Error).message).toContain(f.at("base/granted/linked.txt"));
    expect((error as Error).message).not.toContain("outside");
  });

  it("refuses a file with two names inside the grant too: the count cannot tell where the other name is (the cost of the option)", async () => {
    f = refusing();
    fs.linkSync(f.at("base/granted/a.txt"), f.at("base/granted/a-again.txt"));
    await expect(f.fsys.read(f.cap, "granted/a.txt")).rejects.toThrow(emlink);
  });

  it("still reads, replaces, appends to, stats, lists and deletes ordinary files, and deletes a hard link (the other name is untouched)", async () => {
    f = refusing();
    expect((await f.fsys.read(f.cap, "granted/a.txt")).toString()).toBe("A");
    await f.fsys.write(f.cap, "granted/a.txt", "longer content");
    await f.fsys.write(f.cap, "granted/a.txt", "B");
    expect(fs.readFileSync(f.at("base/granted/a.txt"), "utf8")).toBe("B");
    await f.fsys.append(f.cap, "granted/a.txt", "C");
    await f.fsys.write(f.cap, "granted/new.txt", "N");
    expect(fs.readFileSync(f.at("base/granted/new.txt"), "utf8")).toBe("N");
    expect((await f.fsys.stat(f.cap, "granted/a.txt")).size).toBe(2);
    expect((await f.fsys.stat(f.cap, "granted/sub")).type).toBe("directory");
    const name = linkSecret();
    expect((await f.fsys.list(f.cap, "granted")).map((e) => e.name)).toContain("linked.txt");
    await f.fsys.delete(f.cap, name);
    expect(fs.readFileSync(f.at("outside/secret.txt"), "utf8")).toBe("SECRET");
  });

  it("refuses a non-boolean value", () => {
    f = makeFixture();
    expect(() => createFileSystem({ baseDir: f.base, refuseHardLinks: "yes" as never })).toThrow(InvalidInput);
    expect(() => createFileSystem({ baseDir: f.base, refuseHardLinks: "yes" as never })).toThrow(/refuseHardLinks/);
  });

  const hasProc = process.platform === "linux" && fs.existsSync("/proc/self/fd");
  const anchors: [string, Anchor][] = [["identity", identityAnchor]];
  if (hasProc) anchors.unshift(["proc-fd", procFdAnchor]);
  const realOpen = fs.openSync.bind(fs);

  describe.each(anchors)("with the %s anchor, a file replaced by a hard link between the check and the open", (_kind, anchor) => {
    /** Makes the next open of a file (not a directory) replace T/base/granted/a.txt with a hard link to the secret first. */
    const swapOnFileOpen = () => {
      let swapped = false;
      vi.spyOn(fs, "openSync").mockImplementation((...args: Parameters<typeof fs.openSync>) => {
        const flags = Number(args[1]);
        if (!swapped && (flags & fs.constants.O_DIRECTORY) === 0) {
          swapped = true;
          fs.unlinkSync(f.at("base/granted/a.txt"));
          fs.linkSync(f.at("outside/secret.txt"), f.at("base/granted/a.txt"));
        }
        return realOpen(...args);
      });
    };

    it.each([
      ["read", () => f.fsys.read(f.cap, "granted/a.txt")],
      ["write", () => f.fsys.write(f.cap, "granted/a.txt", "PWNED")],
      ["append", () => f.fsys.append(f.cap, "granted/a.txt", "PWNED")],
    ] as const)("%s is refused on the opened descriptor, and the secret is left alone", async (_op, call) => {
      f = refusing(anchor);
      const outside = snapshot(f.outside);
      swapOnFileOpen();
      await expect(call()).rejects.toThrow(emlink);
      expect(snapshot(f.outside)).toEqual(outside);
    });
  });
});
