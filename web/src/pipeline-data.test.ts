import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartData, chartSpecs, commitTime, merge, minutesSince, type History } from './pipeline-data';

const history = (): History => ({
  step_seconds: 2,
  t: [1796442000, 1796442002],
  series: { produced_per_s: [100, null], consumed_per_s: [99, 98], stored_per_s: [97, 96], lag_messages: [5, 6],
    'files.trades': [10, 11], 'snapshots.trades': [2, 2] },
});

test('a fresh read of the history adds its newer steps; new tables pad, old points go', () => {
  const h = history();
  // Read again a minute later: one step already held, two new, and a table new to the page.
  merge(h, {
    step_seconds: 2,
    t: [1796442002, 1796442004, 1796442006],
    series: { produced_per_s: [null, 150.1, 151], 'files.trades': [11, 15, 15], 'files.quotes': [3, 4, 4] },
  }, 3600);
  assert.deepEqual(h.t, [1796442000, 1796442002, 1796442004, 1796442006]);
  assert.deepEqual(h.series.produced_per_s, [100, null, 150.1, 151]);
  assert.deepEqual(h.series['files.quotes'], [null, null, 4, 4]);
  // A series the read lacks: null for its steps.
  assert.deepEqual(h.series.lag_messages, [5, 6, null, null]);
  // Nothing newer: nothing changes.
  merge(h, { step_seconds: 2, t: [1796442006], series: { produced_per_s: [1] } }, 3600);
  assert.equal(h.t.length, 4);
  // Keep 3 s: the points more than 3 s before the last go.
  merge(h, { step_seconds: 2, t: [1796442008], series: { produced_per_s: [7] } }, 3);
  assert.deepEqual(h.t, [1796442006, 1796442008]);
  assert.deepEqual(h.series.produced_per_s, [151, 7]);
  assert.deepEqual(h.series['files.trades'], [15, null]);
});

test('a read reaches back to the last point held, at most the kept minutes', () => {
  const h = history(); // last point at 1796442002
  assert.equal(minutesSince(h, 1796442004, 15), 2);
  assert.equal(minutesSince(h, 1796442002 + 600, 15), 11);
  assert.equal(minutesSince(h, 1796442002 + 86400, 15), 15);
  assert.equal(minutesSince({ step_seconds: 2, t: [], series: {} }, 0, 15), 15);
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

test('the per-partition lag chart draws the partitions most behind at their peak, named topic/partition', () => {
  const t = 'market.equities.trades.asx';
  const h: History = {
    step_seconds: 2,
    t: [1796442000, 1796442002, 1796442004],
    series: {
      lag_messages: [0, 0, 0],
      [`partition_lag.${t}/0`]: [0, 1, 0],
      [`partition_lag.${t}/1`]: [30, 2, null],
      [`partition_lag.${t}/2`]: [0, 0, 0], // never behind while held: no line
      [`partition_lag.${t}/3`]: [20, 20, 0],
      [`partition_lag.${t}/4`]: [null, 3, 3],
      [`partition_lag.${t}/5`]: [500, 9, 0],
      ['partition_lag.market.equities.quotes.asx/0']: [0, 400, 400],
    },
  };
  const { labels, data } = chartData(h, chartSpecs.find((s) => s.id === 'partition-lag')!);
  assert.deepEqual(labels, [`${t}/5`, 'market.equities.quotes.asx/0', `${t}/1`, `${t}/3`, `${t}/4`]);
  assert.deepEqual(data, [h.t, [500, 9, 0], [0, 400, 400], [30, 2, null], [20, 20, 0], [null, 3, 3]]);
  // Nothing behind: no line at all.
  const none = chartData({ step_seconds: 2, t: [1], series: { [`partition_lag.${t}/0`]: [0] } }, chartSpecs.find((s) => s.id === 'partition-lag')!);
  assert.deepEqual(none.labels, []);
});

test('a series that has nothing left once old points go is dropped', () => {
  const h: History = { step_seconds: 2, t: [1796442000, 1796442002], series: { 'partition_lag.a/0': [7, null], 'partition_lag.a/1': [null, 5] } };
  // The API no longer answers a/0 (other partitions are further behind).
  merge(h, { step_seconds: 2, t: [1796442004], series: { 'partition_lag.a/1': [6], degradation: [null] } }, 2);
  assert.deepEqual(h.t, [1796442002, 1796442004]);
  // One the API still answers stays, however empty (no sink is read: no degradation level).
  assert.deepEqual(h.series, { 'partition_lag.a/1': [5, 6], degradation: [null, null] });
});

test('a table\'s last commit: the time alone when it was today (UTC), else the date and minute', () => {
  const now = new Date('2026-12-05T10:30:00Z');
  assert.equal(commitTime('2026-12-05T10:19:53.123Z', now), '10:19:53');
  assert.equal(commitTime('2026-12-04T23:59:59Z', now), '2026-12-04 23:59');
  assert.equal(commitTime(null, now), '—');
});
