/**
 * Intents held back until something acts. A built-in tool acts only through
 * agentcap's resources, so the intent of its call need not be durable before
 * its handler starts, only before the handler's first action: the dispatcher
 * holds the intent on the call's capability, and the first resource access
 * under that capability (or a descendant) writes it together with its own
 * intent, in one transaction of the audit store, instead of one after the
 * other.
 */
import { nodeOf, type Capability } from "./capability.js";
import type { Node } from "./node.js";

interface Held {
  readonly write: () => Promise<void>;
  /** Set once the write has started; every action then waits for the same write. */
  written: Promise<void> | null;
}

const held = new WeakMap<Node, Held>();
/**
 * How many nodes `held` holds an intent for. While it is 0, no chain can
 * hold one, and an access need not walk its chain to know. A
 * hold whose node is collected before its write starts is never counted
 * down: the count then only errs high, and the walk decides.
 */
let holding = 0;

const ignore = () => undefined;

/** Starts the write of a held intent, once; a write that failed stays, so every later action under it is refused too. */
function start(node: Node, h: Held): Promise<void> {
  if (h.written === null) {
    let written: Promise<void>;
    try {
      written = h.write();
    } catch (e) {
      written = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    h.written = written;
    // Handled here, so a failure nobody awaits yet is no unhandled rejection; its awaiters still see it.
    written.then(() => {
      release(node, h);
    }, ignore);
  }
  return h.written;
}

/** Forgets `h`, the hold on `node`, once its intent is durable; a newer hold on the same node stays. */
function release(node: Node, h: Held): void {
  if (held.get(node) !== h) return;
  held.delete(node);
  holding--;
}

/**
 * Kernel and agentcap's own layers only: holds `write` (recording an intent
 * that must be durable before anything acts under `cap`) until an action
 * under `cap` or a descendant asks for it with `heldIntents`. Returns a
 * function that starts the write if no action has, and resolves once it is
 * durable (the same write for every caller).
 */
export function holdIntent(cap: Capability, write: () => Promise<void>): () => Promise<void> {
  const node = nodeOf(cap);
  const h: Held = { write, written: null };
  if (!held.has(node)) holding++;
  held.set(node, h);
  return () => start(node, h);
}

/**
 * Starts the writes of the intents held anywhere up `cap`'s chain that have
 * not started yet, oldest first. Resolves once every one of them is durable
 * and rejects when one cannot be recorded; null when none is held. An action
 * starts this before writing its own intent, so that the store takes them
 * in the same transaction, and acts only once both have resolved.
 */
export function heldIntents(cap: Capability): Promise<void> | null {
  if (holding === 0) return null;
  let pending: Promise<void>[] | null = null;
  for (const node of nodeOf(cap).chain) {
    const h = held.get(node);
    if (h !== undefined) (pending ??= []).push(start(node, h));
  }
  if (pending === null) return null;
  if (pending.length === 1) return pending[0] as Promise<void>;
  const all = Promise.all(pending).then(ignore);
  all.catch(ignore);
  return all;
}

/**
 * Whether an intent held up `cap`'s chain is not durable yet (held, being
 * written, or refused): a synchronous access, which cannot wait for it,
 * must not act then.
 */
export function heldIntentPending(cap: Capability): boolean {
  if (holding === 0) return false;
  // A loop, not some(): this runs on every synchronous access, where a closure per call is measurable.
  for (const node of nodeOf(cap).chain) if (held.has(node)) return true;
  return false;
}
