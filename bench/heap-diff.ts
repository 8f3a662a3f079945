/**
 * What grew between two V8 heap snapshots (as `npm run load --
 * --heap-snapshots <dir>` writes them): objects counted and sized by kind
 * and constructor name, the largest growth first, and for the kinds that
 * grew most, what holds a few of the new objects (their retainers, up a few
 * levels), to find what a process keeps after its work is done.
 *
 *   node --import tsx bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [rows] [kind…]
 *
 * Naming kinds (the start of a row's label, such as "object Capability")
 * shows what holds those instead of the five that grew most.
 */
import { readFileSync } from "node:fs";

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[], ...unknown[]]; readonly edge_fields: string[]; readonly edge_types: [string[], ...unknown[]] } };
  readonly nodes: number[];
  readonly edges: number[];
  readonly strings: string[];
}

interface Parsed {
  readonly s: Snapshot;
  readonly width: number;
  readonly count: number;
  key(node: number): string;
  selfSize(node: number): number;
  id(node: number): number;
}

function parse(file: string): Parsed {
  const s = JSON.parse(readFileSync(file, "utf8")) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const width = f.length;
  const [type, name, id, size] = ["type", "name", "id", "self_size"].map((n) => f.indexOf(n)) as [number, number, number, number];
  const types = s.snapshot.meta.node_types[0];
  return {
    s,
    width,
    count: s.nodes.length / width,
    key: (n) => `${types[s.nodes[n * width + type] as number] ?? "?"} ${(s.strings[s.nodes[n * width + name] as number] ?? "?").slice(0, 60)}`,
    selfSize: (n) => s.nodes[n * width + size] as number,
    id: (n) => s.nodes[n * width + id] as number,
  };
}

function tally(p: Parsed): Map<string, { count: number; bytes: number }> {
  const t = new Map<string, { count: number; bytes: number }>();
  for (let n = 0; n < p.count; n++) {
    const k = p.key(n);
    const e = t.get(k) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += p.selfSize(n);
    t.set(k, e);
  }
  return t;
}

/** For each node, the nodes whose edges point at it (and the edge's name), to walk up from an object to what keeps it. */
function retainers(p: Parsed): Map<number, { from: number; edge: string }[]> {
  const { s, width } = p;
  const ef = s.snapshot.meta.edge_fields;
  const ew = ef.length;
  const [etype, ename, eto] = ["type", "name_or_index", "to_node"].map((n) => ef.indexOf(n)) as [number, number, number];
  const etypes = s.snapshot.meta.edge_types[0];
  const edgeCount = s.snapshot.meta.node_fields.indexOf("edge_count");
  const into = new Map<number, { from: number; edge: string }[]>();
  let e = 0;
  for (let n = 0; n < p.count; n++) {
    const edges = s.nodes[n * width + edgeCount] as number;
    for (let k = 0; k < edges; k++, e += ew) {
      const kind = etypes[s.edges[e + etype] as number] ?? "?";
      if (kind === "weak" || kind === "shortcut") continue;
      const to = (s.edges[e + eto] as number) / width;
      const nm = kind === "element" || kind === "hidden" ? `[${String(s.edges[e + ename])}]` : (s.strings[s.edges[e + ename] as number] ?? "?");
      const list = into.get(to) ?? [];
      if (list.length < 4) list.push({ from: n, edge: `${kind}:${nm}` });
      into.set(to, list);
    }
  }
  return into;
}

const [beforeFile, afterFile, rowsArg, ...kinds] = process.argv.slice(2);
if (beforeFile === undefined || afterFile === undefined) throw new Error("usage: heap-diff.ts before.heapsnapshot after.heapsnapshot [rows]");
const rows = Number(rowsArg ?? 25);
const before = parse(beforeFile);
const after = parse(afterFile);
const b = tally(before);
const a = tally(after);
const growth = [...a].map(([k, v]) => ({ k, count: v.count - (b.get(k)?.count ?? 0), bytes: v.bytes - (b.get(k)?.bytes ?? 0) })).sort((x, y) => y.bytes - x.bytes);
const total = (t: Map<string, { bytes: number }>) => [...t.values()].reduce((n, v) => n + v.bytes, 0);
console.log(`self size: ${(total(b) / 1e6).toFixed(1)} MB before, ${(total(a) / 1e6).toFixed(1)} MB after`);
for (const g of growth.slice(0, rows)) console.log(`${(g.bytes / 1e3).toFixed(0).padStart(8)} kB ${String(g.count).padStart(8)} × ${g.k}`);

// What holds a few of the objects that are new in the second snapshot, of the kinds that grew most.
const known = new Set<number>();
for (let n = 0; n < before.count; n++) known.add(before.id(n));
const into = retainers(after);
const asked = kinds.length === 0 ? growth.slice(0, 5) : growth.filter((g) => kinds.some((k) => g.k.startsWith(k)));
for (const g of asked) {
  let shown = 0;
  for (let n = 0; n < after.count && shown < 2; n++) {
    if (after.key(n) !== g.k || known.has(after.id(n))) continue;
    shown++;
    const chain: string[] = [];
    let at = n;
    for (let depth = 0; depth < 8; depth++) {
      const up = into.get(at)?.[0];
      if (up === undefined) break;
      chain.push(`${up.edge} of ${after.key(up.from)}`);
      at = up.from;
    }
    console.log(`\n${g.k} (new) is held by:\n  ${chain.join("\n  ")}`);
  }
}
