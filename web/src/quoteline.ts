// The quote line under the chart: the bid and ask standing at the close of
// each bar's window (the last quote in it). Points fall on the bars' own
// times, since the chart spaces its time axis by point, not by clock.
import { seconds, type Bar } from './bars';

export interface Quote {
  symbol: string;
  exchange: string;
  timestamp: string;
  bid_price: string | null;
  bid_quantity: string | null;
  ask_price: string | null;
  ask_quantity: string | null;
}

export interface QuotePoint {
  time: number; // the bar's window start, Unix seconds
  bid: number | null;
  ask: number | null;
}

// quotePoints maps quotes (any order) to the windows of bars (oldest
// first): one point per window that holds a quote.
export function quotePoints(bars: Bar[], quotes: Quote[]): QuotePoint[] {
  const starts = bars.map((b) => seconds(b.window_start));
  const ends = bars.map((b) => seconds(b.window_end));
  const last = new Map<number, { t: number; q: Quote }>();
  for (const q of quotes) {
    const t = seconds(q.timestamp);
    // The last window starting at or before t.
    let lo = 0, hi = starts.length - 1, i = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (starts[mid] <= t) { i = mid; lo = mid + 1; } else hi = mid - 1;
    }
    if (i < 0 || t >= ends[i]) continue;
    const cur = last.get(i);
    if (!cur || t >= cur.t) last.set(i, { t, q });
  }
  return [...last.entries()].sort((a, b) => a[0] - b[0]).map(([i, { q }]) => ({
    time: starts[i],
    bid: side(q.bid_price),
    ask: side(q.ask_price),
  }));
}

// An empty side of the book (null, or ASX's price 0) draws nothing.
function side(p: string | null): number | null {
  const v = p === null ? NaN : Number(p);
  return v > 0 ? v : null;
}
