import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyTrade, prepend, seconds, type Bar, type Trade } from './bars';

const bar = (start: string, end: string, o: string, h: string, l: string, c: string, v: string): Bar => ({
  symbol: 'BTCUSD', exchange: 'SYNTH', interval: '1m', window_start: start, window_end: end,
  open: o, high: h, low: l, close: c, volume: v, trade_count: 1, vwap: o,
});
const trade = (ts: string, price: string, qty: string): Trade => ({
  trade_id: 'x', symbol: 'BTCUSD', exchange: 'SYNTH', timestamp: ts, price, quantity: qty, side: 'BUY',
});

test('seconds keeps microseconds', () => {
  assert.equal(seconds('2014-03-09T20:57:14.754000Z'), Date.UTC(2014, 2, 9, 20, 57, 14) / 1000 + 0.754);
  assert.equal(seconds('2026-12-05T03:41:00.000000Z'), Date.UTC(2026, 11, 5, 3, 41) / 1000);
});

test('a trade in the last window moves its high, low, close and volume', () => {
  const bars = [bar('2026-12-05T03:41:00.000000Z', '2026-12-05T03:42:00.000000Z', '100', '101', '99', '100.5', '2')];
  assert.ok(applyTrade(bars, '1m', trade('2026-12-05T03:41:30.123456Z', '101.25', '0.5')));
  assert.ok(applyTrade(bars, '1m', trade('2026-12-05T03:41:31.000000Z', '98.5', '1.25')));
  assert.deepEqual([bars[0].open, bars[0].high, bars[0].low, bars[0].close, bars[0].volume, bars[0].trade_count],
    ['100', '101.25', '98.5', '98.5', '3.75', 3]);
});

test('a later trade opens the next window; an earlier one changes nothing', () => {
  const bars = [bar('2026-12-05T03:41:00.000000Z', '2026-12-05T03:42:00.000000Z', '100', '101', '99', '100.5', '2')];
  assert.ok(!applyTrade(bars, '1m', trade('2026-12-05T03:40:59.999999Z', '500', '1')));
  assert.ok(applyTrade(bars, '1m', trade('2026-12-05T03:44:10.000000Z', '102', '1')));
  assert.equal(bars.length, 2);
  assert.equal(bars[1].window_start, '2026-12-05T03:44:00Z');
  assert.equal(bars[1].window_end, '2026-12-05T03:45:00Z');
  assert.equal(bars[0].close, '100.5');
});

test('older pages go before the held bars without repeats', () => {
  const held = [bar('2026-12-05T03:41:00Z', '2026-12-05T03:42:00Z', '1', '1', '1', '1', '1')];
  const older = [bar('2026-12-05T03:40:00Z', '2026-12-05T03:41:00Z', '2', '2', '2', '2', '2'), held[0]];
  assert.deepEqual(prepend(held, older).map((b) => b.open), ['2', '1']);
});
