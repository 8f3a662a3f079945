import type { Fraction, SuiteReport } from "./suite-run.ts";

/*
 * The terminal summary: one row per suite and mode (utility without and
 * under attack, attack success rate), then per injection task the attack
 * success in each mode and what stopped it under agentcap.
 */

const percent = (f: Fraction): string => `${String(f.count)}/${String(f.of)} (${f.of === 0 ? "–" : `${(Math.round((1000 * f.count) / f.of) / 10).toString()}%`})`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** The headline table: utility and attack success per suite, defended and undefended side by side. */
export function summaryTable(reports: readonly SuiteReport[]): string {
  const rows = reports.flatMap((r) =>
    Object.entries(r.modes).map(([mode, m]) => [
      r.suite,
      mode,
      `${String(r.userTasks)} × ${String(r.injectionTasks)}`,
      percent(m.utilityWithoutAttack),
      percent(m.utilityUnderAttack),
      percent(m.attackSuccess),
    ]),
  );
  return table(["suite", "agent holds", "tasks × injections", "utility, no attack", "utility under attack", "attack success"], rows);
}

/** Per injection task: attack success in each mode, and what stopped it under agentcap. */
export function injectionTable(report: SuiteReport): string {
  const defended = report.modes.agentcap;
  const undefended = report.modes.undefended;
  const rows = (defended ?? undefended)?.injections.map((inj) => {
    const d = defended?.injections.find((i) => i.id === inj.id);
    const u = undefended?.injections.find((i) => i.id === inj.id);
    const stopped = (by: Readonly<Record<string, number>> | undefined) =>
      Object.entries(by ?? {})
        .sort((a, b) => b[1] - a[1])
        .map(([why, n]) => `${why} (${String(n)})`)
        .join("; ");
    return [inj.id, inj.class, d === undefined ? "" : percent(d.succeeded), u === undefined ? "" : percent(u.succeeded), stopped(d?.stoppedBy), stopped(u?.stoppedBy)];
  });
  return table(["injection", "attack", "success, agentcap", "success, undefended", "stopped under agentcap by (runs)", "stopped undefended by (runs)"], rows ?? []);
}
