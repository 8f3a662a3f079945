import { InvalidInput } from "../kernel/index.js";
import { chainHash, GENESIS_HASH, type ChainHead } from "./chain.js";
import type { EncodedEvent } from "./encoding.js";
import type { EventLinksTable, EventsTable, LinksTable } from "./schema.js";

/** A link the log holds: its key in the lineage index and its encoding. */
export interface StoredLink {
  readonly num: number;
  readonly text: string;
}

/** What the store already holds, asked while its write lock is held. */
export interface StoredState {
  /** Whether an event with this id is already in the log. */
  readonly hasEvent: (id: string) => boolean;
  /** The stored link with this id, if any. */
  readonly link: (id: string) => StoredLink | undefined;
  /** The largest link key in use (0 when there are none). */
  readonly lastLinkNum: number;
}

/** The rows one batch adds, and per event null (written) or the error that refused it alone. */
export interface AppendPlan {
  readonly results: readonly (Error | null)[];
  readonly events: readonly EventsTable[];
  readonly links: readonly LinksTable[];
  readonly eventLinks: readonly EventLinksTable[];
}

/**
 * Chains a batch onto `head`. Runs inside the store's write transaction, so
 * the head is the real one even when several processes share the log. An
 * event whose id is already logged, or whose lineage names a link id the log
 * holds with different content, is refused alone; the rest of the batch is
 * still written.
 */
export function planAppend(head: ChainHead | null, batch: readonly EncodedEvent[], stored: StoredState): AppendPlan {
  const results: (Error | null)[] = [];
  const events: EventsTable[] = [];
  const links: LinksTable[] = [];
  const eventLinks: EventLinksTable[] = [];
  const batchIds = new Set<string>();
  const batchLinks = new Map<string, StoredLink>();
  let linkNum = stored.lastLinkNum;
  let seq = head?.seq ?? 0;
  let prev = head?.hash ?? GENESIS_HASH;

  for (const event of batch) {
    const refusal = refusalOf(event, stored, batchIds, batchLinks);
    results.push(refusal);
    if (refusal !== null) continue;
    batchIds.add(event.columns.id);
    seq += 1;
    const hash = chainHash(
      prev,
      event.body,
      event.links.map((l) => l.text),
    );
    events.push({ ...event.columns, seq, body: event.body, prev_hash: prev, hash });
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
  return { results, events, links, eventLinks };
}

function refusalOf(event: EncodedEvent, stored: StoredState, batchIds: ReadonlySet<string>, batchLinks: ReadonlyMap<string, StoredLink>): Error | null {
  const id = event.columns.id;
  if (batchIds.has(id) || stored.hasEvent(id)) return new InvalidInput(`audit event id ${id} is already in the log; every invocation needs its own event id`);
  for (const link of event.links) {
    const known = stored.link(link.id) ?? batchLinks.get(link.id);
    if (known !== undefined && known.text !== link.text) {
      return new InvalidInput(`audit event ${id} names lineage link ${link.id}, which the log already holds with different content`);
    }
  }
  return null;
}
