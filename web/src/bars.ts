// Bars as the API answers them, and the live bar kept from the tape: the
// exact decimal strings are kept beside the numbers the chart draws.
import { add, cmp } from './decimal';

export interface Bar {
  symbol: string;
  exchange: string;
  interval: string;
  window_start: string;
  window_end: string;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  trade_count: number;
  vwap: string;
  partial?: boolean;
}

export interface Trade {
  trade_id: string;
  symbol: string;
  exchange: string;
  timestamp: string;
  price: string;
  quantity: string;
  side: string;
  trade_conditions?: string[];
}

export const intervals = ['1m', '5m', '15m', '1h', '1d'] as const;
export type Interval = (typeof intervals)[number];

export const intervalSeconds: Record<Interval, number> = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '1d': 86400 };

// seconds reads an RFC 3339 time (six fractional digits) as Unix seconds,
// fractions kept.
export function seconds(t: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(t);
  if (!m) return Date.parse(t) / 1000;
  return Date.parse(m[1] + m[3]) / 1000 + (m[2] ? Number('0.' + m[2]) : 0);
}

export function rfc3339(sec: number): string {
  return new Date(sec * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
}

// prepend merges an older page of bars (oldest first) before the bars
// held, dropping any window already held.
export function prepend(held: Bar[], older: Bar[]): Bar[] {
  if (!held.length) return older.slice();
  const first = seconds(held[0].window_start);
  return older.filter((b) => seconds(b.window_start) < first).concat(held);
}

// applyTrade folds a live trade into the bars: into the last bar when it
// falls in its window, into a new bar after it when it is later. Earlier
// trades (a reconnect's repeats, prints from before the chart) change
// nothing. It answers whether the bars changed.
export function applyTrade(bars: Bar[], interval: Interval, tr: Trade): boolean {
  const last = bars[bars.length - 1];
  const t = seconds(tr.timestamp);
  if (!last || t < seconds(last.window_start)) return false;
  if (t < seconds(last.window_end)) {
    if (cmp(tr.price, last.high) > 0) last.high = tr.price;
    if (cmp(tr.price, last.low) < 0) last.low = tr.price;
    last.close = tr.price;
    last.volume = add(last.volume, tr.quantity);
    last.trade_count++;
    return true;
  }
  const step = intervalSeconds[interval];
  // Intraday windows align to the epoch; a day follows the last one (the
  // exchange-local date, whose length the last window gives).
  const start = interval === '1d'
    ? seconds(last.window_end) + Math.floor((t - seconds(last.window_end)) / step) * step
    : Math.floor(t / step) * step;
  bars.push({
    symbol: last.symbol, exchange: last.exchange, interval, window_start: rfc3339(start), window_end: rfc3339(start + step),
    open: tr.price, high: tr.price, low: tr.price, close: tr.price, volume: tr.quantity, trade_count: 1, vwap: tr.price, partial: true,
  });
  return true;
}
