import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Capability, FullReach } from "../src/index.ts";
import { fsEntry, kernel } from "./built.ts";
import { interleaved, report } from "./harness.ts";

const READ_ITER = 20_000;
const { createMint, narrow, revocable } = kernel;
const { createFileSystem } = fsEntry;
const WRITE_ITER = 5_000;
/** More files than the process keeps descriptors for (32). */
const MANY_FILES = 64;
const DATA = Buffer.alloc(4096, 97);

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/**
 * The system calls of a confined read of a file read before whose
 * descriptor is no longer kept, made directly: the lstat that shows the
 * file still there, the open, the readlink of /proc/self/fd that proves what
 * was opened, then what readFileSync does too (fstat, read, close).
 */
function provedRead(file: string): Buffer {
  fs.lstatSync(file, { throwIfNoEntry: false });
  const fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    fs.readlinkSync(`/proc/self/fd/${String(fd)}`);
    const { size } = fs.fstatSync(fd);
    const buf = Buffer.allocUnsafeSlow(size);
    fs.readSync(fd, buf, 0, size, 0);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The system calls of a confined read through a kept descriptor, made
 * directly: the fstat that shows the file unchanged (and its size) before
 * the read is decided, then, when it acts, the readlink of /proc/self/fd
 * that proves the descriptor still names the path, and the read of one
 * byte more than that size. What the confined read costs beyond this is
 * agentcap's own work; this much is the price of the proof.
 */
function keptRead(fd: number): Buffer {
  const { size } = fs.fstatSync(fd);
  fs.readlinkSync(`/proc/self/fd/${String(fd)}`);
  const buf = Buffer.allocUnsafeSlow(size);
  fs.readvSync(fd, [buf, BEYOND_END], 0);
  return buf;
}

/** The scratch byte past the end that a kept read asks for. */
const BEYOND_END = Buffer.alloc(1);

function chainOfDepth(root: Capability<FullReach>, dir: string, depth: number): Capability<{ readonly fs: "read" }> {
  let cap: Capability<{ readonly fs: "read" }> = root;
  for (let i = 1; i < depth; i++) cap = i % 2 === 0 ? revocable(cap).capability : narrow(cap, { fs: [{ path: dir, ops: ["read"] }] });
  return cap;
}


/**
 * A confined 4 KiB read against a direct `readFileSync` of the same file, and
 * a confined 4 KiB write against `writeFileSync`, in the same run. A
 * confined read of a file read before pays for the kernel's decision and a
 * check of its kept descriptor's real path; one whose descriptor is not
 * kept, for an lstat, an O_NOFOLLOW open and the same check; the write also
 * opens and verifies the parent directory.
 */
export async function runFsBench(): Promise<void> {
  const dir = await fs.promises.realpath(await fs.promises.mkdtemp(path.join(os.tmpdir(), "agentcap-bench-fs-")));
  try {
    const file = path.join(dir, "data.bin");
    const out = path.join(dir, "out.bin");
    const direct = path.join(dir, "direct.bin");
    fs.writeFileSync(file, DATA);
    const mint = createMint({ issuer: "bench", policy: () => ({ fs: [{ path: dir, ops: ["read", "write", "list"] }] }) });
    const cap = mint.issue({ id: "bench-user" });
    const confined = createFileSystem({ baseDir: dir });
    const deep = chainOfDepth(cap, dir, 4);

    // The baselines are awaited like the confined calls (which return promises), so both sides pay the same await.
    // More files than descriptors are kept, read in turn: every read opens its file again.
    const many = Array.from({ length: MANY_FILES }, (_, i) => path.join(dir, `many-${String(i)}.bin`));
    for (const p of many) fs.writeFileSync(p, DATA);
    let turn = 0;
    const keptFd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    const proc = confined.openVerification === "proc-fd";
    const [readBase, ...reads] = await interleaved(
      [
        ["readFileSync 4 KiB (baseline)", () => Promise.resolve(fs.readFileSync(file))],
        ...(proc ? [["  its system calls alone, made directly", () => Promise.resolve(keptRead(keptFd))] as const] : []),
        ["confined read, absolute path", () => confined.read(cap, file)],
        ["confined read, relative path", () => confined.read(cap, "data.bin")],
        ["confined read, capability chain of depth 4", () => confined.read(deep, file)],
        [`confined read, ${String(MANY_FILES)} files in turn (each opened again)`, () => confined.read(cap, many[turn++ % MANY_FILES] as string)],
        ...(proc ? [["  its system calls alone, made directly", () => Promise.resolve(provedRead(file))] as const] : []),
      ],
      READ_ITER,
    );
    fs.closeSync(keptFd);
    if (readBase === undefined) throw new Error("unreachable: the baseline is the first case");
    report(`fs: confined read vs direct (open verification: ${confined.openVerification})`, readBase, reads);

    const [writeBase, ...writes] = await interleaved(
      [
        ["writeFileSync 4 KiB (baseline)", () => { fs.writeFileSync(direct, DATA); return Promise.resolve(); }],
        ["confined write, absolute path", () => confined.write(cap, out, DATA)],
      ],
      WRITE_ITER,
    );
    if (writeBase === undefined) throw new Error("unreachable: the baseline is the first case");
    report("fs: confined write vs direct", writeBase, writes);

    const [floor, openedFloor] = reads.filter((m) => m.name.includes("system calls alone"));
    const confinedRead = reads.find((m) => m.name === "confined read, absolute path");
    const opened = reads.find((m) => m.name.includes("each opened again"));
    const times = (m: { nsPerOp: number } | undefined) => ((m?.nsPerOp ?? Number.NaN) / readBase.nsPerOp).toFixed(2);
    console.log(`  confined 4 KiB read: ${times(confinedRead)}× a direct readFileSync (target: within 2×)`);
    if (floor !== undefined) console.log(`    of which the proof's system calls alone: ${times(floor)}× (fstat, readlink of /proc/self/fd, read)`);
    console.log(`  confined 4 KiB read of a file whose descriptor is not kept: ${times(opened)}×`);
    if (openedFloor !== undefined) console.log(`    of which the proof's system calls alone: ${times(openedFloor)}× (lstat, open, readlink of /proc/self/fd, fstat, read, close)`);
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}
