/**
 * Test-only: splits a Biscuit token into its top-level protobuf fields so the
 * bad-token table can reorder, drop and splice whole signed blocks. It reads
 * only the outer framing (tag, varint, length-delimited bytes); nothing in
 * src/ parses tokens itself.
 */
export interface Field {
  readonly number: number;
  readonly bytes: Buffer;
}

function varint(buf: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (let i = at; i < buf.length; i++) {
    const b = buf[i] as number;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, i + 1];
    shift += 7;
  }
  throw new Error("truncated varint");
}

/** The top-level fields of a base64url token, each with its full encoded bytes (tag included). */
export function splitToken(token: string): Field[] {
  const buf = Buffer.from(token, "base64url");
  const fields: Field[] = [];
  let at = 0;
  while (at < buf.length) {
    const start = at;
    const [tag, afterTag] = varint(buf, at);
    const wire = tag & 7;
    if (wire === 0) at = varint(buf, afterTag)[1];
    else if (wire === 2) {
      const [len, afterLen] = varint(buf, afterTag);
      at = afterLen + len;
    } else throw new Error(`unexpected wire type ${wire}`);
    fields.push({ number: Math.floor(tag / 8), bytes: buf.subarray(start, at) });
  }
  return fields;
}

/** Reassembles fields into a base64url token. */
export function joinToken(fields: readonly Field[]): string {
  return Buffer.concat(fields.map((f) => f.bytes)).toString("base64url");
}

/** Indexes (in `fields`) of the attenuation blocks (protobuf field 3). */
export function blockFieldIndexes(fields: readonly Field[]): number[] {
  return fields.flatMap((f, i) => (f.number === 3 ? [i] : []));
}
