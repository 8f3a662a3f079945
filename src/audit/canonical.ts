/** Strings that JSON writes as they are, between quotes: printable ASCII without `"` and `\`. */
const VERBATIM = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function quote(s: string): string {
  return VERBATIM.test(s) ? `"${s}"` : JSON.stringify(s);
}

/**
 * The kernel's canonical JSON (keys sorted, `undefined` members dropped),
 * byte for byte, written for the audit log's hot path: one pass, no
 * intermediate arrays, and no escaping work for plain ASCII strings. The
 * audit tests check it against the kernel's `canonicalJson`.
 */
export function canonical(value: unknown): string {
  if (typeof value === "string") return quote(value);
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ",";
      const item: unknown = value[i];
      out += item === undefined ? "null" : canonical(item);
    }
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  let out = "{";
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined) continue;
    if (out.length > 1) out += ",";
    out += `${quote(key)}:${canonical(item)}`;
  }
  return `${out}}`;
}
