import { InvalidInput } from "../../kernel/index.js";

/*
 * The environment of a confined program holds only variables that the call
 * names, the capability grants, and the application configured on the
 * resource. Nothing is inherited from process.env: not PATH, not HOME, not
 * the application's secrets.
 */

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The application's variables, checked and copied once when the resource is created. */
export type EnvSource = ReadonlyMap<string, string>;

/** Validates and copies the configured variables (own fields only). Throws InvalidInput naming a bad one. */
export function envSource(values: unknown): EnvSource {
  if (values === undefined) return new Map();
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new InvalidInput("invalid exec config: env: expected an object mapping variable names to string values");
  }
  const out = new Map<string, string>();
  for (const [name, value] of Object.entries(values)) {
    if (!NAME.test(name)) throw new InvalidInput(`invalid exec config: env: ${JSON.stringify(name)} is not an environment variable name`);
    if (typeof value !== "string" || value.includes("\0")) {
      throw new InvalidInput(`invalid exec config: env.${name}: must be a string without NUL bytes`);
    }
    out.set(name, value);
  }
  return out;
}

/**
 * The environment for one run: exactly `names`, valued from `source`. The
 * object has no prototype because child_process walks it with for…in, which
 * would otherwise pass on any key added to a polluted Object.prototype.
 * Throws InvalidInput for a name the application did not configure.
 */
export function scrubbedEnv(source: EnvSource, names: readonly string[]): Record<string, string> {
  const env = Object.create(null) as Record<string, string>;
  for (const name of names) {
    const value = source.get(name);
    if (value === undefined) {
      throw new InvalidInput(`environment variable ${name} is not configured on this exec resource, so it cannot be passed`);
    }
    env[name] = value;
  }
  return env;
}
