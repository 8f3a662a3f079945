import { InvalidInput, type Scalar } from "../../kernel/index.js";

/*
 * A read's rows as a file: CSV (RFC 4180: comma-separated, CRLF line ends,
 * a field quoted when it holds a comma, quote or line break, quotes
 * doubled) or JSON lines (one JSON object per line). In CSV, the rows a
 * read included under a relation are one cell holding their JSON. The rows are those the
 * capability read, already masked, hashed or redacted; nothing is added.
 *
 * A CSV cell that starts with =, +, -, @, a tab or a carriage return is
 * read as a formula by spreadsheet programs, so a value an agent or another
 * tenant wrote could run as one when a person opens the export: such text
 * cells get a leading apostrophe (the OWASP advice for CSV injection).
 * Numbers keep their sign.
 */

/** The formats an export can be written in. */
export const EXPORT_FORMATS = Object.freeze(["csv", "jsonl"] as const);
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const FORMULA = /^[=+\-@\t\r]/;

function csvCell(value: Scalar | object | undefined): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  // Included rows: their JSON text in one cell (it starts with [ or {, which no spreadsheet reads as a formula).
  const cellText = typeof value === "string" ? value : JSON.stringify(value);
  const text = FORMULA.test(cellText) ? `'${cellText}` : cellText;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** `rows` in `format`; `columns`: the CSV header, in order. */
export function formatRows(rows: readonly Readonly<Record<string, Scalar | object>>[], columns: readonly string[], format: unknown): string {
  switch (format) {
    case "csv":
      return [columns, ...rows.map((row) => columns.map((c) => row[c]))].map((line) => `${line.map((v) => csvCell(v)).join(",")}\r\n`).join("");
    case "jsonl":
      return rows.map((row) => `${JSON.stringify(row)}\n`).join("");
    default:
      throw new InvalidInput(`format must be one of ${EXPORT_FORMATS.join(", ")}`);
  }
}
