import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BudgetExhausted, CapabilityDenied, createMint, FileSystemError, LimitExceeded, narrow } from "../../src/index.ts";
import { createFileSystem } from "../../src/resources/fs/index.ts";
import { isWithin } from "../../src/kernel/canonical-forms.ts";
import { procFdAnchor } from "../../src/resources/fs/anchor.ts";
import { closeKept, KEPT_MS, keptCount, MAX_KEPT_BYTES } from "../../src/resources/fs/kept-files.ts";
import { makeFixture, SECRET_CONTENTS, type Fixture } from "./fs-fixture.ts";
import { traceFs } from "./fs-trace.ts";
import { memorySink } from "../tools/memory-sink.ts";
import type { AuditEvent } from "../../src/kernel/audit-sink.ts";

/*
 * Descriptors kept open after a verified read (see kept-files.ts). Each
 * attack changes the file system behind a kept descriptor, the way another
 * process could, and the next read must answer as a read without the kept
 * descriptor would: the file as it is now, or the same denial.
 */

const hasProc = process.platform === "linux" && fs.existsSync("/proc/self/fd");

/** The descriptors of this process that are open on a path under `dir`. */
function descriptorsUnder(dir: string): number[] {
  return fs.readdirSync("/proc/self/fd").flatMap((name) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${name}`).startsWith(`${dir}/`) ? [Number(name)] : [];
    } catch {
      // The descriptor readdir itself used, closed since.
      return [];
    }
  });
}

/** A memory sink that runs `hook.run` once, the next time an intent is recorded: between a read's decision and its act. */
function slowSink() {
  const sink = memorySink();
  const hook: { run: (() => void | Promise<void>) | null } = { run: null };
  const audit = {
    ...sink,
    intend: async (intent: Parameters<typeof sink.intend>[0]) => {
      const run = hook.run;
      hook.run = null;
      if (run !== null) await run();
      return sink.intend(intent);
    },
  };
  return { audit, hook };
}

describe.runIf(hasProc)("descriptors kept for files read before", () => {
  let f: Fixture;
  const text = async (p: string) => (await f.fsys.read(f.cap, p)).toString();

  beforeEach(() => {
    closeKept();
    f = makeFixture(procFdAnchor);
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    f.cleanup();
  });

  it("reads a file read before again without opening it, and only through a descriptor the kernel still names with its path", async () => {
    expect(await text("granted/a.txt")).toBe("A");
    expect(descriptorsUnder(f.root)).toHaveLength(1);
    const opens = vi.spyOn(fs, "openSync");
    expect(await text("granted/a.txt")).toBe("A");
    expect(await text("granted/a.txt")).toBe("A");
    expect(opens).not.toHaveBeenCalled();
  });

  // Each change is made behind a kept descriptor (of granted/a.txt unless a path is given); then the next read must give what a fresh read would.
  const changes: [string, (f: Fixture) => void, string | typeof FileSystemError | typeof CapabilityDenied, string?][] = [
    ["the file rewritten in place", (f) => { fs.writeFileSync(f.at("base/granted/a.txt"), "A2"); }, "A2"],
    ["another file renamed over it", (f) => { fs.writeFileSync(f.at("base/granted/new.txt"), "NEW"); fs.renameSync(f.at("base/granted/new.txt"), f.at("base/granted/a.txt")); }, "NEW"],
    ["the file deleted", (f) => { fs.unlinkSync(f.at("base/granted/a.txt")); }, FileSystemError],
    ["the file renamed away, a link to the secret in its place", (f) => { fs.renameSync(f.at("base/granted/a.txt"), f.at("base/granted/a-old.txt")); fs.symlinkSync(f.at("outside/secret.txt"), f.at("base/granted/a.txt")); }, CapabilityDenied],
    ["the file replaced by a FIFO", (f) => { fs.unlinkSync(f.at("base/granted/a.txt")); execFileSync("mkfifo", [f.at("base/granted/a.txt")]); }, FileSystemError],
    ["the file replaced by a directory", (f) => { fs.unlinkSync(f.at("base/granted/a.txt")); fs.mkdirSync(f.at("base/granted/a.txt")); }, FileSystemError],
    ["its directory moved outside and linked back", (f) => { fs.renameSync(f.at("base/granted"), f.at("outside/moved")); fs.symlinkSync(f.at("outside/moved"), f.at("base/granted")); }, CapabilityDenied],
    ["its directory moved outside, another one with the same file linked in its place", (f) => { fs.renameSync(f.at("base/granted"), f.at("outside/moved")); fs.mkdirSync(f.at("outside/twin")); fs.writeFileSync(f.at("outside/twin/a.txt"), "SECRET"); fs.symlinkSync(f.at("outside/twin"), f.at("base/granted")); }, CapabilityDenied],
    ["its directory moved to another place inside the grant", (f) => { fs.mkdirSync(f.at("base/granted/x")); fs.renameSync(f.at("base/granted/sub"), f.at("base/granted/x/sub")); }, FileSystemError, "granted/sub/file.txt"],
  ];

  it.each(changes)("after %s, reads what a fresh read would", async (_name, change, expected, p = "granted/a.txt") => {
    await text(p);
    change(f);
    if (typeof expected === "string") {
      expect(await text(p)).toBe(expected);
    } else {
      let read: string | undefined;
      await expect((async () => (read = await text(p)))()).rejects.toThrow(expected);
      expect(read).toBeUndefined();
    }
    // The descriptor that no longer proved its file was closed.
    for (const fd of descriptorsUnder(f.root)) expect(SECRET_CONTENTS).not.toContain(fs.readFileSync(`/proc/self/fd/${String(fd)}`, "utf8"));
  });

  it("opens the file again after its permissions or owner change, so the system decides again", async () => {
    await text("granted/a.txt");
    const opens = vi.spyOn(fs, "openSync");
    fs.chmodSync(f.at("base/granted/a.txt"), 0o600);
    expect(await text("granted/a.txt")).toBe("A");
    expect(opens).toHaveBeenCalledTimes(1);
    // Only root may give a file away.
    if (process.getuid?.() !== 0) return;
    fs.chownSync(f.at("base/granted/a.txt"), 1, 1);
    expect(await text("granted/a.txt")).toBe("A");
    expect(opens).toHaveBeenCalledTimes(2);
  });

  it("neither reads through nor closes a kept descriptor's number that other code closed and reused for a file of its own", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
    for (const when of ["at the next read", "when the descriptor's time is up"]) {
      closeKept();
      await text("granted/a.txt");
      const [fd] = descriptorsUnder(f.root);
      if (fd === undefined) throw new Error("no descriptor was kept");
      // Other code's stray close, then its own log gets the number.
      fs.closeSync(fd);
      const log = fs.openSync(f.at("log.txt"), "w");
      try {
        expect(log).toBe(fd);
        if (when === "at the next read") expect(await text("granted/a.txt")).toBe("A");
        else vi.advanceTimersByTime(KEPT_MS + 1);
        expect(fs.readlinkSync(`/proc/self/fd/${String(log)}`)).toBe(f.at("log.txt"));
        fs.writeSync(log, "entry\n");
      } finally {
        fs.closeSync(log);
      }
      expect(fs.readFileSync(f.at("log.txt"), "utf8")).toBe("entry\n");
    }
  });

  it("decides a read whose kept file was swapped for a link to the secret on the path as it is, before charging anything, as a fresh read does", async () => {
    // Each run: a budget of two calls; a read that keeps a.txt (or not), the swap, the refused read, then one more read that must still be allowed.
    const run = async (kept: boolean) => {
      closeKept();
      f.cleanup();
      f = makeFixture(procFdAnchor);
      const sink = memorySink();
      const audited = createFileSystem({ baseDir: f.base, audit: sink });
      const cap = narrow(f.cap, { fs: [{ path: f.granted, ops: ["read"] }], budget: { calls: 2 } });
      await audited.read(cap, "granted/a.txt");
      if (!kept) closeKept();
      fs.renameSync(f.at("base/granted/a.txt"), f.at("base/granted/a-old.txt"));
      fs.symlinkSync(f.at("outside/secret.txt"), f.at("base/granted/a.txt"));
      await expect(audited.read(cap, "granted/a.txt")).rejects.toThrow(CapabilityDenied);
      const next = await audited.read(cap, "granted/sub/file.txt").then((b) => b.toString(), (e: unknown) => e);
      const events = sink.events.map((e) => ["path" in e.request ? path.relative(f.root, e.request.path) : e.request.action, e.decision.allowed]);
      return { next, intents: sink.intents.length, events };
    };
    const fresh = await run(false);
    expect(fresh.next).toBe("SUB");
    const kept = await run(true);
    expect(kept.next).not.toBeInstanceOf(BudgetExhausted);
    expect(kept).toEqual(fresh);
  });

  it("records a read whose kept file was replaced by a link inside the grant under the real path it read, as a fresh read does", async () => {
    const sink = memorySink();
    const audited = createFileSystem({ baseDir: f.base, audit: sink });
    await audited.read(f.cap, "granted/a.txt");
    fs.renameSync(f.at("base/granted/a.txt"), f.at("base/granted/a-old.txt"));
    fs.symlinkSync("sub/file.txt", f.at("base/granted/a.txt"));
    expect((await audited.read(f.cap, "granted/a.txt")).toString()).toBe("SUB");
    expect(sink.events.at(-1)?.request).toEqual({ action: "fs.read", path: f.at("base/granted/sub/file.txt") });
  });

  it("refuses a kept file to a capability that does not grant it, and to one of a mint the file system does not trust, before any system call", async () => {
    await text("granted/a.txt");
    const elsewhere = narrow(f.cap, { fs: [{ path: f.at("base/ro"), ops: ["read"] }] });
    const stranger = createMint({ issuer: "stranger", policy: () => ({ fs: [{ path: f.granted, ops: ["read"] }] }) }).issue({ id: "stranger" });
    const trusting = createFileSystem({ baseDir: f.base, mints: [f.cap.mint.mintId] });
    // The trusting file system reads the kept file for its own mint's capability, through the same kept descriptor.
    expect((await trusting.read(f.cap, "granted/a.txt")).toString()).toBe("A");
    const trace = traceFs();
    try {
      await expect(f.fsys.read(elsewhere, "granted/a.txt")).rejects.toThrow(CapabilityDenied);
      await expect(trusting.read(stranger, "granted/a.txt")).rejects.toThrow(/minted by a mint this resource does not trust/);
      expect(trace.touches()).toEqual([]);
    } finally {
      trace.stop();
    }
  });

  it("records a read through a kept descriptor as it records the read that opened it, and its denial in the caller's words", async () => {
    const sink = memorySink();
    const audited = createFileSystem({ baseDir: f.base, audit: sink });
    await audited.read(f.cap, "granted/a.txt");
    await audited.read(f.cap, "granted/a.txt");
    const elsewhere = narrow(f.cap, { fs: [{ path: f.at("base/ro"), ops: ["read"] }] });
    await expect(audited.read(elsewhere, "granted/a.txt")).rejects.toThrow(CapabilityDenied);
    const [opened, kept, denied] = sink.events;
    // Everything but the event's own id, time and duration.
    const said = (e: AuditEvent | undefined) => (e === undefined ? undefined : { ...e, id: null, at: null, durationMs: null });
    const first = said(opened);
    expect(said(kept)).toEqual(first);
    expect(first).toMatchObject({ request: { action: "fs.read", path: f.at("base/granted/a.txt") }, decision: { allowed: true }, outcome: { ok: true, resultBytes: 1 } });
    expect(denied).toMatchObject({ request: { action: "fs.read", path: f.at("base/granted/a.txt") }, decision: { allowed: false } });
  });

  describe("changed while the read is being recorded, between its decision and its act", () => {
    /** The outcome of a second read of `p` (the first one kept its descriptor, unless `kept` is false) while `change` runs during its intent's write. */
    const during = async (kept: boolean, change: () => void | Promise<void>, options: { maxReadBytes?: number; refuseHardLinks?: boolean } = {}, p = "granted/a.txt") => {
      closeKept();
      const { audit, hook } = slowSink();
      const fsys = createFileSystem({ baseDir: f.base, audit, ...options });
      await fsys.read(f.cap, p);
      if (!kept) closeKept();
      hook.run = change;
      const opens = vi.spyOn(fs, "openSync");
      try {
        return await fsys.read(f.cap, p).then(
          (b) => b.toString(),
          (e: unknown) => (e instanceof FileSystemError ? e.errno : e),
        );
      } finally {
        opened = opens.mock.calls.filter(([at]) => String(at).startsWith(f.root)).length;
        opens.mockRestore();
      }
    };
    /** How many times the last `during` opened a file of the tree (0: it read through the kept descriptor). */
    let opened = 0;

    it("answers as a fresh read would: a file rewritten longer or shorter is read whole, and checked against maxReadBytes as it is now", async () => {
      const rewrite = (content: string) => () => {
        fs.writeFileSync(f.at("base/granted/a.txt"), content);
      };
      for (const kept of [false, true]) {
        fs.writeFileSync(f.at("base/granted/a.txt"), "0123");
        expect(await during(kept, rewrite("abcdefgh"))).toBe("abcdefgh");
        fs.writeFileSync(f.at("base/granted/a.txt"), "0123");
        expect(await during(kept, rewrite("abcdefgh"), { maxReadBytes: 4 })).toBeInstanceOf(LimitExceeded);
        fs.writeFileSync(f.at("base/granted/a.txt"), "0123");
        expect(await during(kept, rewrite("ab"))).toBe("ab");
        fs.writeFileSync(f.at("base/granted/a.txt"), "0123");
        expect(await during(kept, rewrite("wxyz"))).toBe("wxyz");
        expect(opened).toBe(kept ? 0 : 1);
        fs.writeFileSync(f.at("base/granted/a.txt"), "0123");
        expect(await during(kept, rewrite(""))).toBe("");
      }
    });

    it("answers as a fresh read would: a link swapped in is refused (ELOOP), not followed", async () => {
      const swap = () => {
        fs.rmSync(f.at("base/granted/a-old.txt"), { force: true });
        fs.renameSync(f.at("base/granted/a.txt"), f.at("base/granted/a-old.txt"));
        fs.symlinkSync("sub/file.txt", f.at("base/granted/a.txt"));
      };
      expect(await during(false, swap)).toBe("ELOOP");
      fs.rmSync(f.at("base/granted/a.txt"));
      fs.renameSync(f.at("base/granted/a-old.txt"), f.at("base/granted/a.txt"));
      expect(await during(true, swap)).toBe("ELOOP");
    });

    it("answers as a fresh read would: with refuseHardLinks, a second name given to the file is refused (EMLINK)", async () => {
      let n = 0;
      const link = () => {
        fs.linkSync(f.at("base/granted/a.txt"), f.at(`outside/a-link-${String(n++)}.txt`));
      };
      expect(await during(false, link, { refuseHardLinks: true })).toBe("EMLINK");
      for (let i = 0; i < n; i++) fs.unlinkSync(f.at(`outside/a-link-${String(i)}.txt`));
      expect(await during(true, link, { refuseHardLinks: true })).toBe("EMLINK");
    });

    it("never reads, through a descriptor number reused meanwhile, a deleted file that the kernel names with the path read", async () => {
      vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
      // The capability grants exactly one file, whose name is another file's name plus " (deleted)": what the kernel calls that other file once it is deleted.
      fs.writeFileSync(f.at("base/granted/x (deleted)"), "MINE");
      fs.writeFileSync(f.at("base/granted/x"), "NOT-YOURS");
      const only = narrow(f.cap, { fs: [{ path: f.at("base/granted/x (deleted)"), ops: ["read"], subtree: false }] });
      const { audit, hook } = slowSink();
      const fsys = createFileSystem({ baseDir: f.base, audit });
      await text("granted/a.txt");
      const [fd] = descriptorsUnder(f.root);
      if (fd === undefined) throw new Error("no descriptor was kept");
      expect((await fsys.read(only, "granted/x (deleted)")).toString()).toBe("MINE");
      // Such a path is never kept: the only descriptor is a.txt's.
      expect(descriptorsUnder(f.root)).toEqual([fd]);
      vi.advanceTimersByTime(KEPT_MS - 1);
      hook.run = async () => {
        // While the read is recorded: descriptors are closed, another read gets a number for x, and another process deletes x.
        vi.advanceTimersByTime(2);
        expect((await f.fsys.read(f.cap, "granted/x")).toString()).toBe("NOT-YOURS");
        expect(fs.readlinkSync(`/proc/self/fd/${String(fd)}`)).toBe(f.at("base/granted/x"));
        fs.unlinkSync(f.at("base/granted/x"));
      };
      expect((await fsys.read(only, "granted/x (deleted)")).toString()).toBe("MINE");
    });
  });

  it("never keeps a path holding U+FFFD: a file moved to a name whose bytes read the same is not read through its descriptor", async () => {
    const dir = f.at("base/granted/\uFFFD");
    fs.mkdirSync(dir);
    fs.writeFileSync(`${dir}/a.txt`, "MINE");
    const only = narrow(f.cap, { fs: [{ path: dir, ops: ["read"] }] });
    // Not UTF-8, so no string names it, and no grant can: it reads back as U+FFFD.
    const raw = Buffer.concat([Buffer.from(f.at("base/granted/")), Buffer.from([0xff])]);
    const { audit, hook } = slowSink();
    const fsys = createFileSystem({ baseDir: f.base, audit });
    expect((await fsys.read(only, "granted/\uFFFD/a.txt")).toString()).toBe("MINE");
    hook.run = () => {
      // Another process moves the granted directory to the byte name, writes there, and puts a new one in its place.
      fs.renameSync(Buffer.from(dir), raw);
      fs.writeFileSync(Buffer.concat([raw, Buffer.from("/a.txt")]), "MOVED-OUT");
      fs.mkdirSync(dir);
      fs.writeFileSync(`${dir}/a.txt`, "NEW");
    };
    expect((await fsys.read(only, "granted/\uFFFD/a.txt")).toString()).toBe("NEW");
  });

  it("checks a kept file against maxReadBytes by its size when the read acts, even one too large when the read was decided", async () => {
    fs.writeFileSync(f.at("base/granted/a.txt"), "01234567");
    // The descriptor is kept by another file system of the process, which reads larger files: descriptors are the process's.
    await text("granted/a.txt");
    const { audit, hook } = slowSink();
    const small = createFileSystem({ baseDir: f.base, audit, maxReadBytes: 4 });
    hook.run = () => {
      fs.writeFileSync(f.at("base/granted/a.txt"), "ab");
    };
    expect((await small.read(f.cap, "granted/a.txt")).toString()).toBe("ab");
  });

  it("returns a Buffer whose memory is exactly the file, as a fresh read does", async () => {
    for (const p of ["granted/a.txt", "granted/empty.txt"]) {
      closeKept();
      const fresh = await f.fsys.read(f.cap, p);
      const kept = await f.fsys.read(f.cap, p);
      expect(kept.equals(fresh)).toBe(true);
      expect(fresh.buffer.byteLength).toBe(fresh.length);
      expect(kept.buffer.byteLength).toBe(kept.length);
    }
  });

  it("reads a trailing slash on a kept file as the system does, not through the descriptor", async () => {
    await text("granted/a.txt");
    await expect(text("granted/a.txt/")).rejects.toThrow(expect.objectContaining({ errno: "ENOTDIR" }) as Error);
  });

  it("keeps a bounded number of descriptors, only for small files, each for KEPT_MS after its open however often it is read", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "performance"] });
    for (let i = 0; i < 40; i++) fs.writeFileSync(f.at(`base/granted/many-${String(i)}.txt`), String(i));
    fs.writeFileSync(f.at("base/granted/large.bin"), Buffer.alloc(MAX_KEPT_BYTES + 1));
    for (let i = 0; i < 40; i++) expect(await text(`granted/many-${String(i)}.txt`)).toBe(String(i));
    await f.fsys.read(f.cap, "granted/large.bin");
    const kept = descriptorsUnder(f.root);
    expect(kept.length).toBeLessThanOrEqual(32);
    expect(keptCount()).toBeLessThanOrEqual(32);
    expect(kept.map((fd) => fs.readlinkSync(`/proc/self/fd/${String(fd)}`))).not.toContain(f.at("base/granted/large.bin"));
    vi.advanceTimersByTime(KEPT_MS + 1);
    expect(descriptorsUnder(f.root)).toEqual([]);
    expect(keptCount()).toBe(0);
    // Read again and again: the descriptor is still closed once its time is up, and the next read opens the file afresh.
    await text("granted/a.txt");
    const opens = vi.spyOn(fs, "openSync");
    vi.advanceTimersByTime(KEPT_MS / 2);
    await text("granted/a.txt");
    expect(opens).not.toHaveBeenCalled();
    vi.advanceTimersByTime(KEPT_MS / 2);
    await text("granted/a.txt");
    expect(opens).toHaveBeenCalledTimes(1);
    // Each descriptor is closed when its own time is up, whenever the timer was set.
    closeKept();
    await text("granted/a.txt");
    vi.advanceTimersByTime(KEPT_MS / 2);
    await text("granted/sub/file.txt");
    vi.advanceTimersByTime(KEPT_MS / 2 + 1);
    expect(descriptorsUnder(f.root).map((fd) => fs.readlinkSync(`/proc/self/fd/${String(fd)}`))).toEqual([f.at("base/granted/sub/file.txt")]);
    vi.advanceTimersByTime(KEPT_MS / 2);
    expect(descriptorsUnder(f.root)).toEqual([]);
  });

  /** What another process may do to the tree between two reads. */
  const MOVES: Record<string, (f: Fixture) => void> = {
    rewrite: (f) => {
      fs.writeFileSync(f.at("base/granted/a.txt"), `A${String(Math.random())}`);
    },
    replace: (f) => {
      fs.writeFileSync(f.at("base/granted/a.new"), "A-NEW");
      fs.renameSync(f.at("base/granted/a.new"), f.at("base/granted/a.txt"));
    },
    delete: (f) => {
      fs.rmSync(f.at("base/granted/a.txt"), { force: true });
    },
    linkToSecret: (f) => {
      fs.rmSync(f.at("base/granted/a.txt"), { force: true });
      fs.symlinkSync(f.at("outside/secret.txt"), f.at("base/granted/a.txt"));
    },
    linkInside: (f) => {
      fs.rmSync(f.at("base/granted/a.txt"), { force: true });
      fs.symlinkSync("sub/file.txt", f.at("base/granted/a.txt"));
    },
    moveDirOut: (f) => {
      if (fs.lstatSync(f.at("base/granted/d"), { throwIfNoEntry: false })?.isDirectory() !== true) return;
      fs.renameSync(f.at("base/granted/d"), f.at(`outside/d-${String(Date.now())}-${String(Math.random())}`));
    },
    linkDirOut: (f) => {
      fs.rmSync(f.at("base/granted/d"), { recursive: true, force: true });
      fs.symlinkSync(f.at("outside"), f.at("base/granted/d"));
    },
    restoreDir: (f) => {
      fs.rmSync(f.at("base/granted/d"), { recursive: true, force: true });
      fs.mkdirSync(f.at("base/granted/d/e"), { recursive: true });
      fs.writeFileSync(f.at("base/granted/d/e/f.txt"), "F");
    },
    chmod: (f) => {
      if (fs.existsSync(f.at("base/granted/a.txt"))) fs.chmodSync(f.at("base/granted/a.txt"), 0o640);
    },
  };

  /** What a read of `p` must give, worked out from the tree as it is: its bytes, or the kind of error. */
  const expected = (f: Fixture, p: string): string | typeof CapabilityDenied | typeof FileSystemError => {
    // The real path of the longest part that exists, and the rest as written (none of the moves leaves a dangling link).
    let head = f.at(`base/${p}`);
    let rest = "";
    while (!fs.existsSync(head)) {
      rest = `/${path.basename(head)}${rest}`;
      head = path.dirname(head);
    }
    const real = fs.realpathSync(head) + rest;
    if (!isWithin(real, f.granted)) return CapabilityDenied;
    return rest === "" ? fs.readFileSync(real, "utf8") : FileSystemError;
  };

  it("answers every read, whatever was changed behind its kept descriptors, as a fresh look at the tree would", async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom(...Object.keys(MOVES)), fc.constantFrom("granted/a.txt", "granted/d/e/f.txt")), { minLength: 1, maxLength: 8 }), async (steps) => {
        closeKept();
        f.cleanup();
        f = makeFixture(procFdAnchor);
        await text("granted/a.txt");
        await text("granted/d/e/f.txt");
        for (const [move, p] of steps) {
          (MOVES[move] as (f: Fixture) => void)(f);
          const want = expected(f, p);
          if (typeof want === "string") expect(await text(p)).toBe(want);
          else await expect(text(p)).rejects.toThrow(want);
        }
        runs += 1;
      }),
      { numRuns: 150 },
    );
    expect(runs).toBe(150);
  });

  it("lets no child process inherit a kept descriptor", async () => {
    await text("granted/a.txt");
    expect(descriptorsUnder(f.root)).toHaveLength(1);
    const childFds = execFileSync("ls", ["-l", "/proc/self/fd/"], { encoding: "utf8" });
    expect(childFds).not.toContain(f.root);
  });
});
