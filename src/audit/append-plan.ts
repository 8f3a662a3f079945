import { InvalidInput } from "../kernel/errors.ts";
import { chainHash, GENESIS_HASH, type ChainHead } from "./chain.ts";
import type { EncodedEvent } from "./encoding.ts";
import type { EventLinksTable, EventsTable, LinksTable } from "./schema.ts";

/** What the store already holds, asked while its write lock is held. */
export interface StoredState {
  /** Whether an event with this id is already in the log. */
  readonly hasEvent: (id: string) => boolean;
  /** The stored encoding of this link, if any. */
  readonly linkText: (id: string) => string | undefined;
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
  const batchLinks = new Map<string, string>();
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
      if (stored.linkText(link.id) === undefined && !batchLinks.has(link.id)) {
        batchLinks.set(link.id, link.text);
        links.push({ id: link.id, summary: link.text });
      }
      eventLinks.push({ link_id: link.id, event_seq: seq, position });
    });
    prev = hash;
  }
  return { results, events, links, eventLinks };
}

function refusalOf(event: EncodedEvent, stored: StoredState, batchIds: ReadonlySet<string>, batchLinks: ReadonlyMap<string, string>): Error | null {
  const id = event.columns.id;
  if (batchIds.has(id) || stored.hasEvent(id)) return new InvalidInput(`audit event id ${id} is already in the log; every invocation needs its own event id`);
  for (const link of event.links) {
    const known = stored.linkText(link.id) ?? batchLinks.get(link.id);
    if (known !== undefined && known !== link.text) {
      return new InvalidInput(`audit event ${id} names lineage link ${link.id}, which the log already holds with different content`);
    }
  }
  return null;
}
