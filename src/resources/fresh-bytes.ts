/**
 * Joins chunks into a fresh Uint8Array. Buffer.concat may return a view into
 * Node's shared pool, whose `.buffer` would carry unrelated bytes (another
 * request's body, another process's output) to whoever receives the result.
 */
export function freshBytes(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}
