/**
 * Loading the optional engines (better-sqlite3, pg, the AI SDK, the MCP SDK,
 * biscuit-wasm) only where they are used, so that importing an entry never
 * loads an engine it does not need, and a missing one is a MissingDependency
 * naming the package to install instead of a resolution error.
 */
import { createRequire } from "node:module";
import { MissingDependency } from "./errors.js";

const load = createRequire(import.meta.url);

function notFound(error: unknown, name: string): boolean {
  if (!(error instanceof Error) || !("code" in error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return (code === "MODULE_NOT_FOUND" || code === "ERR_MODULE_NOT_FOUND") && error.message.includes(name);
}

/** The package of `specifier`, such as `@modelcontextprotocol/sdk` for `@modelcontextprotocol/sdk/client/index.js`. */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return (specifier.startsWith("@") ? parts.slice(0, 2) : parts.slice(0, 1)).join("/");
}

/** Loads a CommonJS engine synchronously (the caller states its type); throws MissingDependency when it is not installed. */
export function requireOptional(specifier: string, neededFor: string): unknown {
  try {
    return load(specifier);
  } catch (e) {
    if (notFound(e, packageOf(specifier))) throw new MissingDependency(packageOf(specifier), neededFor, { cause: e });
    throw e;
  }
}

/** Imports an ES module engine; rejects with MissingDependency when it is not installed. */
export async function importOptional<T>(specifier: string, neededFor: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (e) {
    if (notFound(e, packageOf(specifier))) throw new MissingDependency(packageOf(specifier), neededFor, { cause: e });
    throw e;
  }
}

/** Resolves an engine's entry to a URL without loading it; throws MissingDependency when it is not installed. */
export function resolveOptional(specifier: string, neededFor: string): string {
  try {
    return import.meta.resolve(specifier);
  } catch (e) {
    if (notFound(e, packageOf(specifier))) throw new MissingDependency(packageOf(specifier), neededFor, { cause: e });
    throw e;
  }
}
