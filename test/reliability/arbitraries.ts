import fc from "fast-check";

/*
 * Hostile values for every parser that takes input from outside: arbitrary
 * JSON, nesting 10,000 levels deep, strings of a megabyte, keys that
 * JavaScript treats specially (__proto__, constructor, prototype), NUL
 * bytes, control characters and lone surrogates (which are not valid UTF-8
 * once encoded).
 */

/** Nesting this deep: more than any parser here accepts, few enough for JSON.parse (JSON.stringify of it overflows the stack of a worker thread). */
export const DEEP = 10_000;

/** `[[[…]]]` and `{"a":{"a":…1}}`, DEEP levels, as JSON text. */
export const DEEP_TEXTS = [`${"[".repeat(DEEP)}${"]".repeat(DEEP)}`, `${'{"a":'.repeat(DEEP)}1${"}".repeat(DEEP)}`] as const;

/** Objects whose own keys are the ones JavaScript treats specially, as JSON.parse makes them. */
export const specialKeys = (): unknown =>
  JSON.parse('{"__proto__":{"polluted":true,"tools":["*"]},"constructor":{"prototype":{"polluted":true}},"prototype":{"polluted":true},"toString":"x","valueOf":1}');

/** Text with NUL, every C0 control character, DEL, C1 controls, lone surrogates and a BOM. */
export const nastyText = fc.oneof(
  fc.string({ unit: fc.constantFrom("\0", "\u0001", "\b", "\t", "\n", "\r", "\u001b", "\u007f", "\u0085", "\ud800", "\udfff", "\ufeff", "a", "/", "..", "%00", "\\", '"') }),
  fc.string({ unit: "binary" }),
  fc.constant("x".repeat(1_000_000)),
);

/** Hostile values of bounded depth, which JSON.stringify can write. */
export const shallowValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 4 }), weight: 6 },
  { arbitrary: nastyText, weight: 3 },
  { arbitrary: fc.dictionary(nastyText, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), weight: 2 },
  { arbitrary: fc.constant(null).map(specialKeys), weight: 1 },
  { arbitrary: fc.array(fc.constant(null).map(specialKeys), { maxLength: 3 }), weight: 1 },
);

/** Any hostile value as JSON text, DEEP nesting included. */
export const hostileJson: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: shallowValue.map((v) => JSON.stringify(v)), weight: 8 },
  { arbitrary: fc.constantFrom(...DEEP_TEXTS), weight: 1 },
);

/** Any hostile value, DEEP nesting included, as JSON.parse makes it. */
export const hostileValue: fc.Arbitrary<unknown> = hostileJson.map((text) => JSON.parse(text) as unknown);

/** Bytes that are not UTF-8 at all, or JSON text cut short. */
export const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }),
  fc.constantFrom(Uint8Array.from([0xc3, 0x28]), Uint8Array.from([0xed, 0xa0, 0x80]), Uint8Array.from([0xff, 0xfe, 0x7b, 0x7d]), Buffer.from('{"jsonrpc":"2.0","id":1,"method":"initialize"')),
);

/** Nothing above may have changed Object.prototype. */
export function prototypeUntouched(): boolean {
  return !("polluted" in {}) && !("tools" in {});
}
