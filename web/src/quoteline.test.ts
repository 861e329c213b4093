import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quotePoints, type Quote } from './quoteline';
import type { Bar } from './bars';

const bar = (start: string, end: string): Bar => ({
  symbol: 'BHP', exchange: 'ASX', interval: '1m', window_start: start, window_end: end,
  open: '1', high: '1', low: '1', close: '1', volume: '1', trade_count: 1, vwap: '1',
});
const quote = (ts: string, bid: string | null, ask: string | null): Quote => ({
  symbol: 'BHP', exchange: 'ASX', timestamp: ts, bid_price: bid, bid_quantity: '1', ask_price: ask, ask_quantity: '1',
});

test('each window takes its last quote, on the bar time', () => {
  const bars = [bar('2014-03-10T00:00:00Z', '2014-03-10T00:01:00Z'), bar('2014-03-10T00:05:00Z', '2014-03-10T00:06:00Z')];
  const pts = quotePoints(bars, [
    quote('2014-03-10T00:05:30.5Z', '36.5', '36.6'),
    quote('2014-03-10T00:00:10Z', '36.1', '36.3'),
    quote('2014-03-10T00:00:50Z', '36.2', '36.4'),
    quote('2014-03-10T00:03:00Z', '99', '99'), // between bars: no window
    quote('2014-03-09T23:59:59Z', '98', '98'), // before the first
  ]);
  assert.deepEqual(pts, [
    { time: Date.UTC(2014, 2, 10) / 1000, bid: 36.2, ask: 36.4 },
    { time: Date.UTC(2014, 2, 10, 0, 5) / 1000, bid: 36.5, ask: 36.6 },
  ]);
});

test('an empty side draws nothing', () => {
  const bars = [bar('2014-03-10T00:00:00Z', '2014-03-10T00:01:00Z')];
  assert.deepEqual(quotePoints(bars, [quote('2014-03-10T00:00:10Z', '0', null)]),
    [{ time: Date.UTC(2014, 2, 10) / 1000, bid: null, ask: null }]);
});
