/**
 * `{ a, b }` without the keys whose value is undefined: with
 * exactOptionalPropertyTypes an optional property may be absent but not
 * undefined, so options are passed on through this rather than spread as they are.
 */
export function defined<T extends object>(values: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Partial<Record<keyof T, unknown>> = {};
  for (const key of Object.keys(values) as (keyof T)[]) {
    if (values[key] !== undefined) out[key] = values[key];
  }
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}
