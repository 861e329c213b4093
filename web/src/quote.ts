// The current bid, ask and spread: the latest quote (GET /v1/quotes, limit 1),
// then every quote of the stream (GET /v1/stream/quotes), drawn in place
// once a frame.
import { get, parseJSON, query } from './api';
import { sub } from './decimal';
import type { Quote } from './quoteline';
import { stream } from './sse';
import { seconds } from './bars';
import { clock, stamp } from './zone';

export class QuotePanel {
  private abort: AbortController | null = null;
  private latest: Quote | null = null;
  private frame = 0;
  // zone the quote's time is shown in: the exchange's.
  zone = 'UTC';

  constructor(private el: HTMLElement) {}

  current(): { bid: string | null; ask: string | null; spread: string | null; timestamp: string } | null {
    const q = this.latest;
    return q ? { bid: q.bid_price, ask: q.ask_price, spread: spread(q), timestamp: q.timestamp } : null;
  }

  async follow(symbol: string, exchange: string): Promise<void> {
    this.abort?.abort();
    const ac = (this.abort = new AbortController());
    this.latest = null;
    this.draw();
    stream(`/v1/stream/quotes?symbols=${encodeURIComponent(symbol)}`, {
      signal: ac.signal,
      onEvent: (e) => {
        if (e.type !== 'quote') return;
        const q = parseJSON(e.data) as Quote;
        if (q.exchange === exchange) this.set(q);
      },
    });
    try {
      const { data } = await get<Quote[]>(`/v1/quotes?${query({ symbol, exchange, limit: 1 })}`, ac.signal);
      // The stream may have brought a newer one meanwhile.
      const held = this.current();
      if (data[0] && (!held || held.timestamp < data[0].timestamp)) this.set(data[0]);
    } catch (err) {
      if (!ac.signal.aborted) this.field('time').textContent = `no quote: ${(err as Error).message}`;
    }
  }

  private set(q: Quote): void {
    this.latest = q;
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  private field(name: string): HTMLElement {
    return this.el.querySelector(`[data-field=${name}]`) as HTMLElement;
  }

  private draw(): void {
    const q = this.latest;
    this.field('bid').textContent = q?.bid_price ?? '—';
    this.field('bid-size').textContent = q?.bid_quantity ? `× ${q.bid_quantity}` : '';
    this.field('ask').textContent = q?.ask_price ?? '—';
    this.field('ask-size').textContent = q?.ask_quantity ? `× ${q.ask_quantity}` : '';
    this.field('spread').textContent = (q && spread(q)) ?? '—';
    const t = q && seconds(q.timestamp);
    this.field('time').textContent = t ? `${stamp(t, this.zone).slice(0, 10)} ${clock(t, this.zone)} ${this.zone}` : 'no quote yet';
  }
}

// An empty side (null, or ASX's 0) has no spread.
function spread(q: Quote): string | null {
  if (!q.bid_price || !q.ask_price || Number(q.bid_price) <= 0 || Number(q.ask_price) <= 0) return null;
  return sub(q.ask_price, q.bid_price);
}
