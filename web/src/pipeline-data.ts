// The pipeline's numbers as the API gives them (GET /v1/pipeline, its
// history, GET /v1/commits), and the mapping of them to the small time
// series the view draws: the history loaded once, each poll appended.
import { seconds } from './bars';

export interface PipelineNow {
  at: string;
  sources: Array<{ name: string; url: string; up: boolean; error: string }>;
  rates: { produced_per_s: number; consumed_per_s: number; stored_per_s: number; window_seconds: number };
  feeds: Array<{ client: string; produced_per_s: number; produced_total: number }>;
  lag: { total_messages: number; max_seconds: number; partitions: Array<{ topic: string; partition: number; messages: number; seconds: number }> };
  degradation: { level: number; name: string };
  breakers: Array<{ name: string; state: string; consecutive_failures: number; opened_total: number; rejections_total: number }>;
  dead_letters: { total: number; by_reason: Array<{ reason: string; count: number }> };
  pool: { size: number; active: number; waiting: number; utilisation: number };
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

// sample is one poll as a row of the history's series.
export function sample(p: PipelineNow): Record<string, number | null> {
  const row: Record<string, number | null> = {
    produced_per_s: p.rates.produced_per_s,
    consumed_per_s: p.rates.consumed_per_s,
    stored_per_s: p.rates.stored_per_s,
    lag_messages: p.lag.total_messages,
    lag_seconds: p.lag.max_seconds,
    dead_letters: p.dead_letters.total,
    degradation: p.degradation.level,
    pool_utilisation: p.pool.utilisation,
  };
  for (const t of p.tables) {
    row['files.' + t.table] = t.data_files;
    row['snapshots.' + t.table] = t.snapshots;
  }
  return row;
}

// append adds a poll to the history (a poll no newer than its last point
// is dropped), a series new to it padded with nulls before, one the poll
// lacks given null, and keeps the last keepSeconds.
export function append(h: History, p: PipelineNow, keepSeconds: number): void {
  const t = seconds(p.at);
  if (h.t.length && t <= h.t[h.t.length - 1]) return;
  const row = sample(p);
  const n = h.t.length;
  for (const k of Object.keys(row)) if (!h.series[k]) h.series[k] = new Array(n).fill(null);
  h.t.push(t);
  for (const [k, v] of Object.entries(h.series)) v.push(row[k] ?? null);
  let cut = 0;
  while (cut < h.t.length && h.t[cut] < t - keepSeconds) cut++;
  if (cut) {
    h.t.splice(0, cut);
    for (const v of Object.values(h.series)) v.splice(0, cut);
  }
}

export interface ChartSpec {
  id: string;
  title: string;
  // series names, or a prefix ending in '.' for one line per table
  series: string[];
  labels?: string[];
}

export const chartSpecs: ChartSpec[] = [
  { id: 'rates', title: 'Feed and ingest, records/s', series: ['produced_per_s', 'consumed_per_s', 'stored_per_s'], labels: ['produced', 'consumed', 'stored'] },
  { id: 'lag', title: 'Consumer lag, messages (all partitions)', series: ['lag_messages'], labels: ['messages'] },
  { id: 'lag-seconds', title: 'Consumer lag, seconds (worst partition)', series: ['lag_seconds'], labels: ['seconds'] },
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
      for (const k of Object.keys(h.series).sort()) if (k.startsWith(s)) { names.push(k); labels.push(k.slice(s.length)); }
    } else {
      names.push(s);
      labels.push(spec.labels?.[i] ?? s);
    }
  });
  return { labels, data: [h.t, ...names.map((k) => h.series[k] ?? new Array(h.t.length).fill(null))] };
}
