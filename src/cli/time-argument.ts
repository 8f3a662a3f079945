import { InvalidInput } from "../kernel/index.js";

const UNITS: Readonly<Record<string, number>> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A point in time written on the command line, as milliseconds since the
 * epoch: `today` or `yesterday` (local midnight), a duration ago (`90m`,
 * `24h`, `7d`), milliseconds since the epoch, or an ISO 8601 date or time
 * (`2025-01-15`, `2025-01-15T09:00Z`). Throws InvalidInput for anything else.
 */
export function parseTimeArgument(text: string, now: number = Date.now()): number {
  const value = text.trim();
  if (value === "today" || value === "yesterday") {
    const midnight = new Date(now);
    midnight.setHours(0, 0, 0, 0);
    if (value === "yesterday") midnight.setDate(midnight.getDate() - 1);
    return midnight.getTime();
  }
  const ago = /^(\d+)([smhd])$/.exec(value);
  if (ago !== null) return now - Number(ago[1]) * (UNITS[ago[2] ?? ""] ?? Number.NaN);
  if (/^\d+$/.test(value)) return Number(value);
  // Only ISO-like text: Date.parse accepts much else, with engine-specific meanings.
  const parsed = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(parsed)) {
    throw new InvalidInput(
      `${JSON.stringify(text)} is not a time: use an ISO date or time (2025-01-15, 2025-01-15T09:00Z), a duration ago (90m, 24h, 7d), today, yesterday, or milliseconds since the epoch`,
    );
  }
  return parsed;
}
