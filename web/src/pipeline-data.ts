// The pipeline's numbers as the API gives them (GET /v1/pipeline, its
// history, GET /v1/commits), and the mapping of them to the small time
// series the view draws: the history loaded once, each poll appended.

export interface PipelineNow {
  at: string;
  sources: Array<{ name: string; url: string; up: boolean; error: string }>;
  // null until the API has two readings, or where no process exports them
  rates: { produced_per_s: number | null; consumed_per_s: number | null; stored_per_s: number | null; window_seconds: number; stored_window_seconds: number };
  feeds: Array<{ client: string; produced_per_s: number | null; produced_total: number }>;
  lag: { total_messages: number; max_seconds: number; partitions: Array<{ topic: string; partition: number; messages: number; seconds: number }> };
  degradation: { level: number; name: string } | null; // null: no sink is read
  breakers: Array<{ name: string; state: string; consecutive_failures: number; opened_total: number; rejections_total: number }>;
  dead_letters: { total: number; by_reason: Array<{ reason: string; count: number }> };
  pool: { size: number; active: number; waiting: number; utilisation: number } | null;
  tables: Array<{ table: string; rows: number; data_files: number; snapshots: number; last_commit: string | null }>;
}

export interface History {
  step_seconds: number;
  t: number[];
  series: Record<string, Array<number | null>>;
}

export interface Commit {
  table: string;
  snapshot_id: string;
  timestamp: string;
  operation: string;
  writer: string;
  rows: number;
  files: number;
  bytes: number;
  duration_ms: number | null;
  total_rows: number;
  total_files: number;
}

// merge adds the points of a fresh read of the history newer than h's
// last (the same steps the API measured, so the lines do not change
// character where the page took over), a series new to h padded with
// nulls before, one the read lacks given null (and dropped once no value
// of it is left); it keeps the last keepSeconds.
export function merge(h: History, fresh: History, keepSeconds: number): void {
  const last = h.t.length ? h.t[h.t.length - 1] : -Infinity;
  const from = fresh.t.findIndex((t) => t > last);
  if (from < 0) return;
  const n = h.t.length;
  for (const k of Object.keys(fresh.series)) if (!h.series[k]) h.series[k] = new Array(n).fill(null);
  h.t.push(...fresh.t.slice(from));
  for (const [k, v] of Object.entries(h.series)) {
    const add = fresh.series[k]?.slice(from) ?? new Array(fresh.t.length - from).fill(null);
    v.push(...add);
  }
  const end = h.t[h.t.length - 1];
  let cut = 0;
  while (cut < h.t.length && h.t[cut] < end - keepSeconds) cut++;
  if (cut) {
    h.t.splice(0, cut);
    for (const v of Object.values(h.series)) v.splice(0, cut);
    // A series the API no longer answers (a partition no longer among the
    // most behind) goes once nothing of it is left, lest the page hold
    // every partition ever behind.
    for (const [k, v] of Object.entries(h.series)) if (!fresh.series[k] && v.every((x) => x === null)) delete h.series[k];
  }
}

// minutesSince is how many minutes of history a read must ask for to
// reach back to h's last point (at most keep minutes).
export function minutesSince(h: History, nowSeconds: number, keep: number): number {
  if (!h.t.length) return keep;
  return Math.min(keep, Math.max(1, Math.ceil((nowSeconds - h.t[h.t.length - 1]) / 60) + 1));
}

export interface ChartSpec {
  id: string;
  title: string;
  // series names, or a prefix ending in '.' for one line per table (or partition)
  series: string[];
  labels?: string[];
  // top: a prefix's lines are only the n highest at their peak, of those above 0
  top?: number;
}

// partitionLines is how many partitions' lag the per-partition chart draws
// (the API answers the 5 most behind over the history it keeps; the page
// holds a little more as the most behind change).
export const partitionLines = 5;

export const chartSpecs: ChartSpec[] = [
  { id: 'rates', title: 'Feed and ingest, records/s', series: ['produced_per_s', 'consumed_per_s', 'stored_per_s'], labels: ['produced', 'consumed', 'stored'] },
  { id: 'lag', title: 'Consumer lag, messages (all partitions)', series: ['lag_messages'], labels: ['messages'] },
  { id: 'lag-seconds', title: 'Consumer lag, seconds (worst partition)', series: ['lag_seconds'], labels: ['seconds'] },
  { id: 'partition-lag', title: `Consumer lag per partition, messages (the ${partitionLines} most behind)`, series: ['partition_lag.'], top: partitionLines },
  { id: 'dead-letters', title: 'Dead letters (total)', series: ['dead_letters'], labels: ['dead letters'] },
  { id: 'degradation', title: 'Degradation level', series: ['degradation'], labels: ['level'] },
  { id: 'pool', title: 'Query pool utilisation', series: ['pool_utilisation'], labels: ['utilisation'] },
  { id: 'files', title: 'Data files per table', series: ['files.'] },
  { id: 'snapshots', title: 'Snapshots per table', series: ['snapshots.'] },
];

// chartData is one chart's columns, uPlot's shape: times then each series.
export function chartData(h: History, spec: ChartSpec): { labels: string[]; data: Array<Array<number | null>> } {
  const names: string[] = [];
  const labels: string[] = [];
  spec.series.forEach((s, i) => {
    if (s.endsWith('.')) {
      let keys = Object.keys(h.series).filter((k) => k.startsWith(s)).sort();
      if (spec.top !== undefined) {
        const peak = new Map(keys.map((k) => [k, h.series[k].reduce<number>((m, v) => Math.max(m, v ?? 0), 0)]));
        keys = keys.filter((k) => peak.get(k)! > 0).sort((a, b) => peak.get(b)! - peak.get(a)! || (a < b ? -1 : 1)).slice(0, spec.top);
      }
      for (const k of keys) { names.push(k); labels.push(k.slice(s.length)); }
    } else {
      names.push(s);
      labels.push(spec.labels?.[i] ?? s);
    }
  });
  return { labels, data: [h.t, ...names.map((k) => h.series[k] ?? new Array(h.t.length).fill(null))] };
}

// commitTime is a table's last commit in UTC, the time alone when it was
// today: the box is a third of the page wide and a whole timestamp ran
// past its edge.
export function commitTime(at: string | null, now = new Date()): string {
  if (!at) return '—';
  const stamp = at.replace('T', ' ').slice(0, 19);
  return stamp.startsWith(now.toISOString().slice(0, 10)) ? stamp.slice(11) : stamp.slice(0, 16);
}
