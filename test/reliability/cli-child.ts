/**
 * The `agentcap` command run in this process, one command line after
 * another, for the CLI fuzzing test: it receives each argv over IPC, runs
 * `main` on it exactly as bin/agentcap does, and answers with how it ended
 * (returned with an exit code, exited through process.exit, or threw), and
 * what it wrote. The parent starts it in a temporary directory as an
 * unprivileged user, since the command lines it runs may name any path.
 */
import { main } from "../../src/cli/main.ts";

/** What one command line came to. */
export interface CliOutcome {
  readonly id: number;
  /** "returned": main resolved; "exit": process.exit was called; "threw": main rejected (a stack trace in bin/agentcap). */
  readonly ended: "returned" | "exit" | "threw";
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** What it threw, with its stack, when it threw. */
  readonly thrown: string | null;
}

class Exited extends Error {
  constructor(readonly code: number) {
    super(`process.exit(${code})`);
  }
}

/** Keeps at most this much of each stream: enough to judge a message, without echoing a megabyte back. */
const KEEP = 8192;

const realExit = process.exit.bind(process);
const realOut = process.stdout.write.bind(process.stdout);
const realErr = process.stderr.write.bind(process.stderr);

async function run(argv: readonly string[]): Promise<Omit<CliOutcome, "id">> {
  let stdout = "";
  let stderr = "";
  const capture = (append: (text: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      append(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
      const done = rest.find((r) => typeof r === "function") as (() => void) | undefined;
      done?.();
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture((t) => { if (stdout.length < KEEP) stdout += t.slice(0, KEEP - stdout.length); });
  process.stderr.write = capture((t) => { if (stderr.length < KEEP) stderr += t.slice(0, KEEP - stderr.length); });
  process.exit = (code?: number | string | null) => {
    throw new Exited(Number(code ?? process.exitCode ?? 0));
  };
  process.exitCode = 0;
  try {
    await main(["node", "agentcap", ...argv]);
    return { ended: "returned", code: process.exitCode, stdout, stderr, thrown: null };
  } catch (e) {
    if (e instanceof Exited) return { ended: "exit", code: e.code, stdout, stderr, thrown: null };
    return { ended: "threw", code: 1, stdout, stderr, thrown: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  } finally {
    process.stdout.write = realOut;
    process.stderr.write = realErr;
    process.exit = realExit;
    process.exitCode = 0;
  }
}

process.on("message", (message: { readonly id: number; readonly argv: readonly string[] }) => {
  void run(message.argv).then((outcome) => process.send?.({ id: message.id, ...outcome }));
});
// Anything escaping a command (a rejection nobody awaited) is a failure the parent must see.
process.on("unhandledRejection", (reason) => {
  realErr(`unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
  realExit(70);
});
process.send?.({ ready: true });
