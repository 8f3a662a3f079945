import fs from "node:fs";
import { createRequire, isBuiltin } from "node:module";
import path from "node:path";
import type * as esbuild from "esbuild";
import { InvalidInput, SandboxViolation } from "../kernel/index.js";
import { importOptional } from "../kernel/internal.js";

/*
 * Tool modules and their allowlisted modules are compiled on the host with
 * esbuild to CommonJS function bodies (TypeScript types stripped), which the
 * sandbox evaluates inside its Compartment. Compiling confines nothing: what
 * the code can reach is decided inside the sandbox, where every import other
 * than the allowlist fails. Here, only a tool module's own relative imports
 * are bundled, and only from its own directory.
 */

/** Where a tool module's code comes from: a file, or source text (which may not import files). */
export type ToolModuleSource =
  | { readonly path: string }
  | {
      readonly source: string;
      /** Name shown in errors (default `tool-module.ts`). */
      readonly filename?: string;
    };

/** A compiled tool module. */
export interface CompiledModule {
  readonly code: string;
  readonly filename: string;
  /** The directory allowlisted modules are resolved from: the module's own, or the working directory for source text. */
  readonly dir: string;
}

const COMMON: esbuild.BuildOptions = {
  bundle: true,
  format: "cjs",
  platform: "neutral",
  target: "es2024",
  write: false,
  logLevel: "silent",
  legalComments: "none",
  charset: "utf8",
  // `import()` becomes a call of the sandbox's require, which refuses what is not allowed with a clear violation.
  supported: { "dynamic-import": false },
  tsconfigRaw: {},
};

/** Compiles a tool module. Throws SandboxViolation for an import of a file outside its directory, InvalidInput for code that does not compile. */
export async function compileToolModule(from: ToolModuleSource): Promise<CompiledModule> {
  const file = "path" in from ? realFile(from.path) : null;
  const filename = file ?? ("source" in from ? (from.filename ?? "tool-module.ts") : "tool-module.ts");
  const root = file === null ? null : path.dirname(file);
  const refused: string[] = [];
  const plugin: esbuild.Plugin = {
    name: "agentcap-tool-module",
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind === "entry-point") return undefined;
        if (!isFileSpecifier(args.path)) return { path: args.path, external: true };
        if (root === null) {
          refused.push(`a tool module given as source text cannot import files (${args.path})`);
          return { errors: [{ text: "refused" }] };
        }
        return undefined;
      });
      build.onLoad({ filter: /.*/ }, (args) => {
        if (root !== null && !within(root, realFile(args.path))) {
          refused.push(`tool module ${filename} imports ${args.path}, outside its own directory ${root}`);
          return { errors: [{ text: "refused" }] };
        }
        return undefined;
      });
    },
  };
  const options: esbuild.BuildOptions = {
    ...COMMON,
    plugins: [plugin],
    ...(file === null
      ? { stdin: { contents: "source" in from ? from.source : "", sourcefile: filename, loader: "ts", resolveDir: process.cwd() } }
      : { entryPoints: [file], absWorkingDir: root ?? process.cwd() }),
  };
  const code = await build(options, filename, refused);
  return { code, filename, dir: root ?? process.cwd() };
}

const allowedCache = new Map<string, Promise<string>>();

/**
 * An allowlisted module compiled with everything it imports, except Node's
 * own modules (left to the sandbox's require, which refuses them). Compiled
 * once per resolved module and process.
 */
export function compileAllowedModule(specifier: string, fromDir: string): Promise<string> {
  if (specifier.length === 0 || isFileSpecifier(specifier) || isBuiltin(specifier)) {
    return Promise.reject(
      new InvalidInput(`allow lists package names; ${JSON.stringify(specifier)} is not one (files of a tool module are bundled, Node's modules are never allowed)`),
    );
  }
  const key = resolvedKey(specifier, fromDir);
  let compiled = allowedCache.get(key);
  if (compiled === undefined) {
    const builtins: esbuild.Plugin = {
      name: "agentcap-allowed-module",
      setup(build) {
        build.onResolve({ filter: /.*/ }, (args) => (isBuiltin(args.path) ? { path: args.path, external: true } : undefined));
      },
    };
    // The namespace and its default export, as `require` returns them to the tool module.
    const contents = `export * from ${JSON.stringify(specifier)};\nimport * as all from ${JSON.stringify(specifier)};\nexport default all.default;\n`;
    compiled = build(
      {
        ...COMMON,
        plugins: [builtins],
        mainFields: ["module", "main"],
        conditions: ["import", "default"],
        stdin: { contents, sourcefile: `allow:${specifier}`, loader: "js", resolveDir: fromDir },
      },
      specifier,
      [],
    );
    allowedCache.set(key, compiled);
    compiled.catch(() => allowedCache.delete(key));
  }
  return compiled;
}

/** esbuild, an optional peer dependency: loaded on the first compilation. */
function compiler(): Promise<typeof esbuild> {
  return importOptional<typeof esbuild>("esbuild", "loading a tool module");
}

async function build(options: esbuild.BuildOptions, name: string, refused: readonly string[]): Promise<string> {
  const { build: run } = await compiler();
  let result: esbuild.BuildResult;
  try {
    result = await run(options);
  } catch (e) {
    if (refused.length > 0) throw new SandboxViolation(refused.join("; "));
    const errors = (e as { errors?: readonly esbuild.Message[] }).errors ?? [];
    const detail = errors.length > 0 ? errors.map((m) => (m.location === null ? m.text : `${m.location.file}:${m.location.line}: ${m.text}`)).join("; ") : String(e);
    throw new InvalidInput(`${name} does not compile: ${detail}`);
  }
  const [output] = result.outputFiles ?? [];
  if (output === undefined) throw new InvalidInput(`${name} compiled to nothing`);
  return output.text;
}

function isFileSpecifier(specifier: string): boolean {
  return specifier.startsWith("./") || specifier.startsWith("../") || specifier === "." || specifier === ".." || path.isAbsolute(specifier);
}

function realFile(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    throw new InvalidInput(`tool module ${p} cannot be read`);
  }
}

function within(root: string, file: string): boolean {
  const relative = path.relative(root, file);
  return relative !== "" && !relative.startsWith(`..${path.sep}`) && relative !== ".." && !path.isAbsolute(relative);
}

/** The file a specifier resolves to from `dir`, so two directories sharing one package share its compilation. */
function resolvedKey(specifier: string, dir: string): string {
  try {
    return createRequire(path.join(dir, "noop.js")).resolve(specifier);
  } catch {
    return `${dir}\0${specifier}`;
  }
}
