/**
 * The one module that touches the Vercel AI SDK (`ai`), an optional peer:
 * it is imported when an agent first runs, so the rest of the runtime
 * (sessions, the Governor) works without it.
 */
import type * as Ai from "ai";
import { importOptional } from "../kernel/internal.js";

let loading: Promise<typeof Ai> | null = null;

/** The AI SDK, imported once; rejects with MissingDependency when `ai` is not installed. */
export function aiSdk(): Promise<typeof Ai> {
  loading ??= importOptional<typeof Ai>("ai", "an agentcap Executor's agent loop");
  return loading;
}
