/**
 * Identifiers that sort by creation time: RFC 9562 version 7 UUIDs (a 48-bit
 * Unix millisecond timestamp, then random bits). The audit log indexes event
 * and link ids, so ids made one after another land on the same few index
 * pages instead of a random one each, as version 4 ids did.
 *
 * Only for ids whose creation time is no secret: the time can be read from
 * the id by anyone who sees it. Bearer secrets (session ids, nonces) stay
 * version 4.
 */
import * as crypto from "node:crypto";
import { v7 } from "uuid";

/** Node's own generator (Node 24.16 and later): 74 random bits per id, from its cached entropy. */
const native = (crypto as Partial<typeof crypto>).randomUUIDv7?.bind(crypto);

/** The `uuid` package's generator, for Node versions without one: monotonic within a millisecond, 42 random bits per id. */
export const portableTimeOrderedId = (): string => v7();

/** A fresh time-ordered id (a version 7 UUID). */
export const timeOrderedId: () => string = native === undefined ? portableTimeOrderedId : () => native();
