/*
 * Every string from the log may have been chosen by an agent. Preact renders
 * strings as text nodes, never as markup; this makes control characters
 * (terminal escape sequences, bidirectional overrides) visible instead of
 * letting them act on what surrounds them.
 */
// eslint-disable-next-line no-control-regex -- finding control characters is what this module is for
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** `text` with every control or direction character shown as a visible symbol. */
export function visible(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.codePointAt(0) ?? 0;
    if (code < 0x20) return String.fromCodePoint(0x2400 + code);
    if (code === 0x7f) return "\u2421";
    return `\u27e8U+${code.toString(16).toUpperCase().padStart(4, "0")}\u27e9`;
  });
}

/** A time as people read it in logs: ISO 8601, UTC. */
export function when(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** The first characters of an id, enough to tell ids apart on screen. */
export function short(id: string): string {
  return id.length > 13 ? `${id.slice(0, 8)}…` : id;
}
