import { useEffect, useState } from "preact/hooks";
import { api, ApiError, type ActivityChart, type ChartDimension, type ChartSeries } from "./api";
import { visible, when } from "./text";

/*
 * Calls and denials over time, one small bar chart per principal, tool or
 * tenant, for the timeline's filters. Drawn as SVG by Preact (no chart
 * library, nothing loaded from elsewhere); each chart has a label saying
 * what it shows, and the same counts are a table for those who read rather
 * than look. Keys come from the log, so they are shown as text only.
 */

const WIDTH = 240;
const HEIGHT = 36;
const BUCKETS = "24";
const DIMENSIONS: readonly (readonly [ChartDimension, string])[] = [
  ["principal", "principal"],
  ["tool", "tool"],
  ["tenant", "tenant"],
];

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** A span's width in the largest unit that keeps it a whole number or close. */
function duration(ms: number): string {
  for (const [unit, size] of [["d", 86_400_000], ["h", 3_600_000], ["min", 60_000], ["s", 1000]] as const) if (ms >= size) return `${String(Math.round((ms / size) * 10) / 10)} ${unit}`;
  return `${String(ms)} ms`;
}

function Bars(props: { series: ChartSeries; chart: ActivityChart; max: number }) {
  const { series, chart, max } = props;
  const w = WIDTH / chart.buckets;
  const scale = (n: number) => (max === 0 ? 0 : (n / max) * HEIGHT);
  const denied = sum(series.denied);
  const label = `${series.key}: ${String(series.total)} call${series.total === 1 ? "" : "s"}, ${String(denied)} denied, from ${when(chart.from)} to ${when(chart.from + chart.bucketMs * chart.buckets)}`;
  return (
    <svg class="bars" viewBox={`0 0 ${String(WIDTH)} ${String(HEIGHT)}`} width={WIDTH} height={HEIGHT} role="img" aria-label={visible(label)}>
      {series.allowed.map((allowed, i) => {
        const no = series.denied[i] ?? 0;
        const [ha, hd] = [scale(allowed), scale(no)];
        return (
          <g key={i}>
            <title>{`${when(chart.from + i * chart.bucketMs)}: ${String(allowed)} allowed, ${String(no)} denied`}</title>
            {allowed > 0 && <rect class="bar-allowed" x={i * w} y={HEIGHT - hd - ha} width={Math.max(1, w - 1)} height={ha} />}
            {no > 0 && <rect class="bar-denied" x={i * w} y={HEIGHT - hd} width={Math.max(1, w - 1)} height={hd} />}
          </g>
        );
      })}
    </svg>
  );
}

/** The charts for `filters` (the timeline's, tenant included). */
export function ActivityCharts(props: { filters: Record<string, string | undefined> }) {
  const [by, setBy] = useState<ChartDimension>("principal");
  const [chart, setChart] = useState<ActivityChart | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = JSON.stringify(props.filters);

  useEffect(() => {
    let current = true;
    setError(null);
    api.chart({ ...props.filters, by, buckets: BUCKETS }).then(
      (c) => {
        if (current) setChart(c);
      },
      (e: unknown) => {
        if (current) setError(e instanceof ApiError ? e.message : String(e));
      },
    );
    return () => {
      current = false;
    };
  }, [key, by]);

  const max = chart === null ? 0 : Math.max(0, ...chart.series.flatMap((s) => s.allowed.map((a, i) => a + (s.denied[i] ?? 0))));
  return (
    <section class="charts" aria-labelledby="charts-title">
      <h3 id="charts-title">Calls and denials over time</h3>
      <div class="chart-controls">
        <label class="inline" for="chart-by">Group by</label>
        <select id="chart-by" value={by} onChange={(e) => { setBy(e.currentTarget.value as ChartDimension); }}>
          {DIMENSIONS.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
        </select>
        <span class="legend" aria-hidden="true">
          <span class="swatch allowed" /> allowed <span class="swatch denied" /> denied
        </span>
      </div>
      {error !== null && <p role="alert" class="error">{visible(error)}</p>}
      {chart !== null && (
        <>
          <p class="count">
            {chart.events} event{chart.events === 1 ? "" : "s"} in {chart.buckets} spans of {duration(chart.bucketMs)} from {when(chart.from)}
          </p>
          <ul class="chart-list">
            {chart.series.map((s) => (
              <li key={s.key}>
                <span class="chart-key">{visible(s.key)}</span>
                <Bars series={s} chart={chart} max={max} />
                <span class="chart-total">
                  {s.total} · <span class={sum(s.denied) > 0 ? "denied-count" : ""}>{sum(s.denied)} denied</span>
                </span>
              </li>
            ))}
          </ul>
          <details>
            <summary>The charts as a table</summary>
            <table class="chart-table">
              <caption>Calls (denied in brackets) per span, by {chart.by}</caption>
              <thead>
                <tr>
                  <th scope="col">From (UTC)</th>
                  {chart.series.map((s) => <th scope="col" key={s.key}>{visible(s.key)}</th>)}
                </tr>
              </thead>
              <tbody>
                {Array.from({ length: chart.buckets }, (_, i) => (
                  <tr key={i}>
                    <th scope="row">{when(chart.from + i * chart.bucketMs)}</th>
                    {chart.series.map((s) => (
                      <td key={s.key}>{(s.allowed[i] ?? 0) + (s.denied[i] ?? 0)} ({s.denied[i] ?? 0})</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
          </details>
        </>
      )}
    </section>
  );
}
