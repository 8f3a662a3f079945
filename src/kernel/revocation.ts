import { Revoked } from "./errors.js";

/**
 * The caretaker's switch for one revocable link. Flipping it is O(1); every
 * check of the link or of anything derived from it walks the chain and sees it.
 */
export class RevocationCell {
  #revoked = false;
  #reason = "";
  /** Made on the first watch: most cells (a tool call's lease) are never watched. */
  #watchers: Set<(reason: string) => void> | null = null;

  get revoked(): boolean {
    return this.#revoked;
  }

  get reason(): string {
    return this.#reason;
  }

  revoke(reason: string): void {
    if (this.#revoked) return;
    this.#revoked = true;
    this.#reason = reason;
    const watchers = this.#watchers;
    this.#watchers = null;
    if (watchers !== null) for (const watcher of [...watchers]) watcher(reason);
  }

  watch(watcher: (reason: string) => void): () => void {
    const watchers = (this.#watchers ??= new Set());
    watchers.add(watcher);
    return () => watchers.delete(watcher);
  }
}

/** A revocable link of a chain, as a watcher sees it. */
export interface WatchedLink {
  readonly cell: RevocationCell;
  readonly link: number;
  readonly linkId: string;
}

/** An AbortSignal that fires with a Revoked error when any of `links` is revoked, and its disposer. */
export function signalForLinks(links: readonly WatchedLink[], capabilityId: string): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const unwatch: (() => void)[] = [];
  const dispose = () => {
    for (const u of unwatch) u();
    unwatch.length = 0;
  };
  const abort = (w: WatchedLink, reason: string) => {
    dispose();
    const message = `capability ${capabilityId} was revoked at link ${w.link} (${w.linkId}): ${reason}`;
    controller.abort(new Revoked(message, { capabilityId, link: w.link, linkId: w.linkId, rule: "revoked", because: "was revoked" }));
  };
  for (const w of links) {
    if (w.cell.revoked) {
      abort(w, w.cell.reason);
      break;
    }
    unwatch.push(w.cell.watch((reason) => { abort(w, reason); }));
  }
  return { signal: controller.signal, dispose };
}
