import { test } from 'node:test';
import assert from 'node:assert/strict';
import { append, chartData, chartSpecs, sample, type History, type PipelineNow } from './pipeline-data';

// A poll as the API's contract gives it.
const poll = (at: string, produced: number, tables: PipelineNow['tables']): PipelineNow => ({
  at,
  sources: [{ name: 'this process', url: '', up: true, error: '' }],
  rates: { produced_per_s: produced, consumed_per_s: 149, stored_per_s: 148.2, window_seconds: 10 },
  feeds: [{ client: 'k2-feed-synth', produced_per_s: produced, produced_total: 12345 }],
  lag: { total_messages: 12, max_seconds: 0.4, partitions: [{ topic: 'market.crypto.trades.synth', partition: 3, messages: 7, seconds: 0.2 }] },
  degradation: { level: 1, name: 'SOFT' },
  breakers: [{ name: 'query_engine', state: 'closed', consecutive_failures: 0, opened_total: 0, rejections_total: 0 }],
  dead_letters: { total: 3, by_reason: [{ reason: 'invalid', count: 3 }] },
  pool: { size: 4, active: 1, waiting: 0, utilisation: 0.25 },
  tables,
});

const history = (): History => ({
  step_seconds: 2,
  t: [1796442000, 1796442002],
  series: { produced_per_s: [100, null], consumed_per_s: [99, 98], stored_per_s: [97, 96], lag_messages: [5, 6],
    'files.trades': [10, 11], 'snapshots.trades': [2, 2] },
});

test('a poll becomes one row of every series', () => {
  const row = sample(poll('2026-12-05T03:40:04Z', 150.1, [{ table: 'trades', rows: 9, data_files: 15, snapshots: 3, last_commit: null }]));
  assert.deepEqual(row, {
    produced_per_s: 150.1, consumed_per_s: 149, stored_per_s: 148.2, lag_messages: 12, lag_seconds: 0.4,
    dead_letters: 3, degradation: 1, pool_utilisation: 0.25, 'files.trades': 15, 'snapshots.trades': 3,
  });
});

test('polls append to the history; new tables pad, old points go', () => {
  const h = history();
  append(h, poll('2026-12-05T03:40:04Z', 150.1, [
    { table: 'trades', rows: 9, data_files: 15, snapshots: 3, last_commit: null },
    { table: 'quotes', rows: 9, data_files: 4, snapshots: 1, last_commit: null },
  ]), 3600);
  assert.deepEqual(h.t, [1796442000, 1796442002, 1796442004]);
  assert.deepEqual(h.series.produced_per_s, [100, null, 150.1]);
  assert.deepEqual(h.series['files.quotes'], [null, null, 4]);
  assert.deepEqual(h.series.lag_seconds, [null, null, 0.4]);
  // Not newer than the last point: dropped.
  append(h, poll('2026-12-05T03:40:04Z', 1, []), 3600);
  assert.equal(h.t.length, 3);
  // Keep 3 s: the two oldest go.
  append(h, poll('2026-12-05T03:40:06Z', 7, []), 3);
  assert.deepEqual(h.t, [1796442004, 1796442006]);
  assert.deepEqual(h.series.produced_per_s, [150.1, 7]);
  assert.deepEqual(h.series['files.trades'], [15, null]);
});

test('a per-table chart has a line per table, named by it', () => {
  const h = history();
  h.series['files.quotes'] = [1, 2];
  const files = chartSpecs.find((s) => s.id === 'files')!;
  const { labels, data } = chartData(h, files);
  assert.deepEqual(labels, ['quotes', 'trades']);
  assert.deepEqual(data, [h.t, [1, 2], [10, 11]]);
  const rates = chartData(h, chartSpecs.find((s) => s.id === 'rates')!);
  assert.deepEqual(rates.labels, ['produced', 'consumed', 'stored']);
  assert.deepEqual(rates.data[1], [100, null]);
});
