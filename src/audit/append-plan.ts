import { InvalidInput } from "../kernel/index.js";
import { chainHash, GENESIS_HASH, type ChainHead } from "./chain.js";
import { leafText, type EncodedEvent } from "./encoding.js";
import type { Frontier } from "./merkle.js";
import { leafHash } from "./proof-verifier.js";
import type { EventLinksTable, EventsTable, LinksTable, TreeTable } from "./schema.js";

/** A link the log holds: its key in the lineage index and its encoding. */
export interface StoredLink {
  readonly num: number;
  readonly text: string;
}

/** What the store already holds, asked while its write lock is held. */
export interface StoredState {
  /** Whether an entry with this event id and phase is already in the log. */
  readonly hasEntry: (id: string, phase: number) => boolean;
  /** The stored link with this id, if any. */
  readonly link: (id: string) => StoredLink | undefined;
  /** The largest link key in use (0 when there are none). */
  readonly lastLinkNum: number;
}

/** The rows one batch adds, per entry null (written) or the error that refused it alone, and the tree it leaves. */
export interface AppendPlan {
  readonly results: readonly (Error | null)[];
  readonly events: readonly EventsTable[];
  readonly links: readonly LinksTable[];
  readonly eventLinks: readonly EventLinksTable[];
  readonly tree: readonly TreeTable[];
  /** The Merkle tree's right edge after the batch (the one given, grown). */
  readonly frontier: Frontier;
}

/**
 * Appends a batch onto `head` and `frontier` (which it grows: pass a copy).
 * Runs inside the store's write transaction, so the head is the real one
 * even when several processes share the log. An entry already logged (same
 * event id and phase), or whose lineage names a link id the log holds with
 * different content, is refused alone; the rest of the batch is still
 * written.
 */
export function planAppend(head: ChainHead | null, frontier: Frontier, batch: readonly EncodedEvent[], stored: StoredState): AppendPlan {
  const results: (Error | null)[] = [];
  const events: EventsTable[] = [];
  const links: LinksTable[] = [];
  const eventLinks: EventLinksTable[] = [];
  const tree: TreeTable[] = [];
  const batchIds = new Set<string>();
  const batchLinks = new Map<string, StoredLink>();
  let linkNum = stored.lastLinkNum;
  let seq = head?.seq ?? 0;
  let prev = head?.hash ?? GENESIS_HASH;
  if (frontier.size !== seq) throw new Error(`the Merkle tree holds ${String(frontier.size)} leaves but the log ${String(seq)} entries`);

  for (const event of batch) {
    const refusal = refusalOf(event, stored, batchIds, batchLinks);
    results.push(refusal);
    if (refusal !== null) continue;
    batchIds.add(`${event.columns.id}/${String(event.columns.phase)}`);
    seq += 1;
    const leaf = leafHash(leafText(event.body, event.links.map((l) => l.text)));
    const leafHex = leaf.toString("hex");
    const hash = chainHash(prev, leafHex);
    frontier.push(leaf, (n) => tree.push({ level: n.level, idx: n.index, hash: n.hash.toString("hex") }));
    events.push({ ...event.columns, seq, body: event.body, leaf: leafHex, prev_hash: prev, hash });
    event.links.forEach((link, position) => {
      let known = stored.link(link.id) ?? batchLinks.get(link.id);
      if (known === undefined) {
        known = { num: ++linkNum, text: link.text };
        batchLinks.set(link.id, known);
        links.push({ num: known.num, id: link.id, summary: link.text });
      }
      eventLinks.push({ link_num: known.num, event_seq: seq, position });
    });
    prev = hash;
  }
  return { results, events, links, eventLinks, tree, frontier };
}

function refusalOf(event: EncodedEvent, stored: StoredState, batchIds: ReadonlySet<string>, batchLinks: ReadonlyMap<string, StoredLink>): Error | null {
  const { id, phase } = event.columns;
  if (batchIds.has(`${id}/${String(phase)}`) || stored.hasEntry(id, phase)) {
    return new InvalidInput(`audit event id ${id} is already in the log; every invocation needs its own event id`);
  }
  for (const link of event.links) {
    const known = stored.link(link.id) ?? batchLinks.get(link.id);
    if (known !== undefined && known.text !== link.text) {
      return new InvalidInput(`audit event ${id} names lineage link ${link.id}, which the log already holds with different content (or logged under another redaction policy)`);
    }
  }
  return null;
}
