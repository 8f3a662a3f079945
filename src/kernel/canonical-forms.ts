import { InvalidInput } from "./errors.js";

/**
 * The canonical forms that grants and requests must be written in. Matching is
 * done on these forms only, so two spellings of one resource can never match
 * differently.
 */

const MAX_PATH_LENGTH = 4096;

/** Why `path` is not a canonical absolute POSIX path, or undefined when it is. */
export function absolutePathProblem(path: string): string | undefined {
  if (path.length === 0) return "is empty";
  if (path.length > MAX_PATH_LENGTH) return `is longer than ${MAX_PATH_LENGTH} characters`;
  if (path.includes("\0")) return "contains a NUL byte";
  if (!path.startsWith("/")) return "is not absolute (it must start with /)";
  if (path === "/") return undefined;
  if (path.endsWith("/")) return "ends with a separator";
  if (path.includes("//")) return "contains an empty segment (//)";
  for (const segment of path.split("/")) {
    if (segment === "." || segment === "..") return `contains a '${segment}' segment`;
  }
  return undefined;
}

/** True when `path` equals `base` or lies below it, compared on whole path components. */
export function isWithin(path: string, base: string): boolean {
  if (base === "/") return true;
  return path === base || (path.startsWith(base) && path.charCodeAt(base.length) === 47 /* "/" */);
}

const UNRESERVED = /%(2[DdEe]|3[0-9]|4[1-9A-Fa-f]|5[0-9Aa]|5[Ff]|6[1-9A-Fa-f]|7[0-9Aa]|7[Ee])/g;
const ENCODED_SEPARATOR_OR_NUL = /%(2[Ff]|5[Cc]|00)/;

/** A segment that is a dot segment (with or without path parameters) or holds a separator or NUL. */
const DISGUISED = /^\.\.?(;|$)|[/\\\0]/;
const PERCENT_U = /%u([0-9A-Fa-f]{4})/g;
const PERCENT = /%([0-9A-Fa-f]{2})/g;

/**
 * What a lenient server may make of a path segment: %uXXXX escapes (IIS),
 * percent escapes as UTF-8 or else byte by byte, and compatibility forms
 * (a full-width dot is a dot), applied until nothing changes (double
 * encoding), at most a few times.
 */
function serverDecoded(segment: string): string {
  // WHATWG parsing leaves only ASCII in a path, so a segment without escapes is what every server reads.
  if (!segment.includes("%")) return segment;
  let current = segment;
  for (let round = 0; round < 4; round++) {
    const unicode = current.replace(PERCENT_U, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    let bytes: string;
    try {
      bytes = decodeURIComponent(unicode.replace(/%(?![0-9A-Fa-f]{2})/g, "%25"));
    } catch {
      bytes = unicode.replace(PERCENT, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    }
    const next = bytes.normalize("NFKC");
    if (next === current) return current;
    current = next;
  }
  return current;
}

/**
 * Parses `input` as an http(s) URL the WHATWG way, refuses userinfo and
 * encoded separators, decodes percent-encoded unreserved characters and
 * removes dot segments, so `/v1/%2e%2e/admin` and `/v1/../admin` both become
 * `/admin` before any prefix is compared.
 */
export function canonicalHttpUrl(input: string): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new InvalidInput(`URL ${JSON.stringify(input)} is not a valid absolute URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new InvalidInput(`URL ${JSON.stringify(input)} uses ${url.protocol}; only http: and https: are allowed`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new InvalidInput(`URL ${JSON.stringify(input)} contains userinfo (user:password@); it is refused because it disguises the real host`);
  }
  if (ENCODED_SEPARATOR_OR_NUL.test(url.pathname)) {
    throw new InvalidInput(`URL ${JSON.stringify(input)} has an encoded '/', '\\' or NUL in its path; servers disagree on what that means, so it is refused`);
  }
  const decoded = url.pathname.replace(UNRESERVED, (m) => String.fromCharCode(parseInt(m.slice(1), 16)));
  // Decoding can expose new dot segments; the pathname setter parses again and removes them.
  if (decoded !== url.pathname) url.pathname = decoded;
  // Servers that honour path parameters (Tomcat, Jetty, Spring) read "..;x" as "..", which would escape a prefix.
  if (url.pathname.split("/").some((segment) => /^\.\.?;/.test(segment))) {
    throw new InvalidInput(`URL ${JSON.stringify(input)} has a dot segment with path parameters (such as "..;"); it is refused because some servers read it as ".."`);
  }
  // Others decode once more than the URL standard does ("..%3B", "%u002e%u002e", "%252e%252e", full-width dots).
  if (url.pathname.split("/").some((segment) => DISGUISED.test(serverDecoded(segment)))) {
    throw new InvalidInput(
      `URL ${JSON.stringify(input)} has a path segment that some servers decode into a dot segment or a separator (such as "..%3B" or "%u002e%u002e"); it is refused because they would act on another path`,
    );
  }
  url.hash = "";
  return url;
}

/** Why `origin` is not a canonical http(s) origin, or undefined when it is. */
export function originProblem(origin: string): string | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return "is not a valid URL origin such as https://api.example.com";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return "must use http: or https:";
  if (url.origin !== origin) return `must be written in canonical form: ${url.origin}`;
  return undefined;
}

/** True when URL path `path` is `prefix` or lies below it on whole segments (a prefix ending in / matches any continuation). */
export function pathHasPrefix(path: string, prefix: string): boolean {
  if (prefix.endsWith("/")) return path.startsWith(prefix);
  return path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47);
}
