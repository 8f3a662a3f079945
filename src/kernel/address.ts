import { BlockList, isIPv4, isIPv6 } from "node:net";

/** Where an IP address points: only `public` is reachable without an explicit grant. */
export type AddressClass = "public" | "loopback" | "private" | "link-local" | "reserved";

function blockList(v4: readonly string[], v6: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of v4) {
    const [net, bits] = cidr.split("/") as [string, string];
    list.addSubnet(net, Number(bits), "ipv4");
  }
  for (const cidr of v6) {
    const [net, bits] = cidr.split("/") as [string, string];
    list.addSubnet(net, Number(bits), "ipv6");
  }
  return list;
}

const RANGES: readonly [Exclude<AddressClass, "public">, BlockList][] = [
  ["loopback", blockList(["127.0.0.0/8"], ["::1/128"])],
  ["link-local", blockList(["169.254.0.0/16"], ["fe80::/10"])],
  ["private", blockList(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"], ["fc00::/7"])],
  [
    "reserved",
    blockList(
      ["0.0.0.0/8", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"],
      // Local-use NAT64 and Teredo carry IPv4 destinations in forms that vary by deployment: never public.
      ["::/128", "100::/64", "64:ff9b:1::/48", "2001::/32", "2001:db8::/32", "ff00::/8", "fec0::/10"],
    ),
  ],
];

/** Expands an IPv6 address to its eight 16-bit groups. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (isIPv4(tail)) {
    const [a, b, c, d] = tail.split(".").map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = rest === undefined || rest === "" ? [] : rest.split(":");
  const fill = rest === undefined ? [] : new Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...fill, ...right].map((g) => parseInt(g, 16));
}

/** The IPv4 address an IPv6 address embeds by a standard mapping (mapped, translated, compatible, NAT64, 6to4), if any. */
function embeddedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6] ?? 0, g[7] ?? 0);
  if (zeros(0, 6) && !(g[6] === 0 && (g[7] ?? 0) <= 1)) return v4(g[6] ?? 0, g[7] ?? 0);
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return v4(g[6] ?? 0, g[7] ?? 0);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6] ?? 0, g[7] ?? 0);
  if (g[0] === 0x2002) return v4(g[1] ?? 0, g[2] ?? 0);
  return undefined;
}

/**
 * Classifies an IP address; IPv6 forms that embed an IPv4 address are judged
 * by the IPv4 address they carry. Anything that is not an IP address is
 * `reserved`, so it is never mistaken for a public one.
 */
export function classifyAddress(address: string): AddressClass {
  const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
  if (isIPv4(bare)) return classifyIn(bare, "ipv4");
  if (!isIPv6(bare) || bare.includes("%")) return "reserved";
  const v4 = embeddedIPv4(bare);
  return v4 === undefined ? classifyIn(bare, "ipv6") : classifyIn(v4, "ipv4");
}

function classifyIn(address: string, family: "ipv4" | "ipv6"): AddressClass {
  for (const [cls, list] of RANGES) if (list.check(address, family)) return cls;
  return "public";
}

/** True when `host` (a URL hostname) is an IP literal rather than a name. */
export function isIpLiteral(host: string): boolean {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return isIPv4(bare) || isIPv6(bare);
}

/** The IP literal of a URL hostname without IPv6 brackets. */
export function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/*
 * Address ranges a grant names (CIDR). An address and a range are compared
 * as bit strings: "4:" or "6:" followed by the address's bits, and a range is
 * the family tag followed by its first `prefix` bits, so "in the range" is
 * "starts with", which Biscuit's Datalog can say too (src/token/compile.ts).
 * An IPv6 form that embeds an IPv4 address (mapped, compatible, NAT64, 6to4)
 * is written as that IPv4 address, as `classifyAddress` judges it, so
 * `::ffff:169.254.169.254` is inside 169.254.0.0/16 and inside no IPv6 range.
 */

function bitsOf(groups: readonly number[], width: number): string {
  return groups.map((g) => g.toString(2).padStart(width, "0")).join("");
}

function ipv4Bits(address: string): string {
  return bitsOf(address.split(".").map(Number), 8);
}

/** The bit string of an IP address (see above), or null when `address` is not one (a zone id makes it not one). */
export function addressBits(address: string): string | null {
  const bare = unbracket(address);
  if (isIPv4(bare)) return `4:${ipv4Bits(bare)}`;
  if (!isIPv6(bare) || bare.includes("%")) return null;
  const v4 = embeddedIPv4(bare);
  return v4 === undefined ? `6:${bitsOf(ipv6Groups(bare), 16)}` : `4:${ipv4Bits(v4)}`;
}

const PREFIX_LENGTH = /^(0|[1-9][0-9]{0,2})$/;

/** Why `range` is not an address range a grant can name, or undefined when it is one. */
export function addressRangeProblem(range: string): string | undefined {
  const form = "must be an address range such as 10.0.0.0/8 or fd00::/8 (one address is 10.0.0.5/32 or fd00::5/128)";
  const slash = range.indexOf("/");
  if (slash < 0) return form;
  const network = range.slice(0, slash);
  const length = range.slice(slash + 1);
  const v4 = isIPv4(network);
  if ((!v4 && !isIPv6(network)) || network.includes("%") || !PREFIX_LENGTH.test(length)) return form;
  const max = v4 ? 32 : 128;
  if (Number(length) > max) return `has a prefix longer than ${max} bits`;
  if (!v4 && embeddedIPv4(network) !== undefined) {
    return "names IPv6 forms of IPv4 addresses (mapped, NAT64, 6to4), which are matched as the IPv4 address they carry: name the IPv4 range instead";
  }
  const bits = v4 ? ipv4Bits(network) : bitsOf(ipv6Groups(network), 16);
  if (bits.includes("1", Number(length))) return `has bits set beyond its /${length} prefix: name the range by its first address`;
  return undefined;
}

/** The bit-string prefix of a well-formed range (see `addressRangeProblem`): an address is in it when its bits start with this. */
export function addressRangeBits(range: string): string {
  const [network = "", length = "0"] = range.split("/");
  const bits = isIPv4(network) ? `4:${ipv4Bits(network)}` : `6:${bitsOf(ipv6Groups(network), 16)}`;
  return bits.slice(0, 2 + Number(length));
}
