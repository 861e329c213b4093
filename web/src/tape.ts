// The live trade tape (GET /v1/stream/trades): events are parsed as they
// come but drawn once per animation frame, and the table keeps the newest
// maxRows rows, so a thousand trades a second cost a few rows a frame.
import type { Trade } from './bars';
import { cmp } from './decimal';
import { parseJSON } from './api';
import { stream } from './sse';

export const maxRows = 200;

export class Tape {
  private pending: Trade[] = [];
  private frame = 0;
  private abort: AbortController | null = null;
  private lastPrice = '';
  private received = 0;
  private listeners: Array<(batch: Trade[]) => void> = [];
  private times: number[] = []; // arrival times of the last second's trades, for the rate

  constructor(private body: HTMLTableSectionElement, private status: HTMLElement) {}

  // onBatch is told each frame's trades, oldest first.
  onBatch(fn: (batch: Trade[]) => void): void {
    this.listeners.push(fn);
  }

  count(): number {
    return this.received;
  }

  rows(): number {
    return this.body.rows.length;
  }

  follow(symbol: string, exchange: string): void {
    this.abort?.abort();
    this.abort = new AbortController();
    this.pending = [];
    this.lastPrice = '';
    this.body.replaceChildren();
    this.status.textContent = 'connecting…';
    const signal = this.abort.signal;
    stream(`/v1/stream/trades?symbols=${encodeURIComponent(symbol)}`, {
      signal,
      onState: (s) => {
        if (!signal.aborted) this.status.textContent = s === 'open' ? 'live' : s === 'refused' ? 'API key refused' : 'reconnecting…';
      },
      onEvent: (e) => {
        if (e.type !== 'trade') return;
        const tr = parseJSON(e.data) as Trade;
        if (tr.exchange !== exchange) return;
        this.received++;
        this.pending.push(tr);
        if (!this.frame) this.frame = requestAnimationFrame(() => this.draw());
      },
    });
  }

  private draw(): void {
    this.frame = 0;
    const batch = this.pending;
    this.pending = [];
    const now = performance.now();
    for (let i = 0; i < batch.length; i++) this.times.push(now);
    while (this.times.length && this.times[0] < now - 1000) this.times.shift();
    for (const fn of this.listeners) fn(batch);
    // Only the newest maxRows of the batch can be seen.
    const frag = document.createDocumentFragment();
    const from = Math.max(0, batch.length - maxRows);
    for (let i = batch.length - 1; i >= from; i--) frag.append(this.row(batch[i], i > from ? batch[i - 1].price : this.lastPrice));
    if (batch.length) this.lastPrice = batch[batch.length - 1].price;
    this.body.prepend(frag);
    while (this.body.rows.length > maxRows) this.body.deleteRow(-1);
    this.status.textContent = `live · ${this.times.length}/s`;
  }

  private row(tr: Trade, prev: string): HTMLTableRowElement {
    const r = document.createElement('tr');
    const dir = prev ? cmp(tr.price, prev) : 0;
    r.className = dir > 0 ? 'up' : dir < 0 ? 'down' : '';
    const cells = [tr.timestamp.slice(11, 23), tr.price, tr.quantity, tr.side];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      r.append(td);
    }
    return r;
  }
}
