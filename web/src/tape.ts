// The live trade tape (GET /v1/stream/trades): events are parsed as they
// come but drawn once per animation frame, and the table keeps the newest
// maxRows rows, so a thousand trades a second cost a few rows a frame.
import { seconds, type Trade } from './bars';
import { cmp } from './decimal';
import { parseJSON } from './api';
import { stream } from './sse';
import { clock } from './zone';

export const maxRows = 200;

export class Tape {
  private pending: Trade[] = [];
  private frame = 0;
  private abort: AbortController | null = null;
  private lastPrice = '';
  private received = 0;
  private listeners: Array<(batch: Trade[]) => void> = [];
  private second = 0; // the rate shown: trades counted in the last whole second
  private inSecond = 0;
  private shownRate = -1;
  // zone the times are shown in: the exchange's (set by follow's caller).
  zone = 'UTC';

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
    for (const fn of this.listeners) fn(batch);
    // Only the newest maxRows of the batch can be seen; rows that fall off
    // the bottom are reused at the top.
    const frag = document.createDocumentFragment();
    const from = Math.max(0, batch.length - maxRows);
    const spare = Math.max(0, this.body.rows.length + batch.length - from - maxRows);
    const reuse: HTMLTableRowElement[] = [];
    for (let i = 0; i < spare; i++) reuse.push(this.body.rows[this.body.rows.length - 1 - i]);
    for (let i = batch.length - 1; i >= from; i--) frag.append(this.row(reuse.pop(), batch[i], i > from ? batch[i - 1].price : this.lastPrice));
    if (batch.length) this.lastPrice = batch[batch.length - 1].price;
    this.body.prepend(frag);
    this.countRate(batch.length);
  }

  private countRate(n: number): void {
    const sec = Math.floor(performance.now() / 1000);
    if (sec !== this.second) {
      const rate = sec === this.second + 1 ? this.inSecond : 0;
      this.second = sec;
      this.inSecond = 0;
      if (rate !== this.shownRate) this.status.textContent = `live · ${rate.toLocaleString('en')}/s`;
      this.shownRate = rate;
    }
    this.inSecond += n;
  }

  private row(r: HTMLTableRowElement | undefined, tr: Trade, prev: string): HTMLTableRowElement {
    if (!r) {
      r = document.createElement('tr');
      for (let i = 0; i < 4; i++) r.append(document.createElement('td'));
    }
    const dir = prev ? cmp(tr.price, prev) : 0;
    r.className = dir > 0 ? 'up' : dir < 0 ? 'down' : '';
    const cells = r.cells;
    cells[0].textContent = clock(seconds(tr.timestamp), this.zone);
    cells[1].textContent = tr.price;
    cells[2].textContent = tr.quantity;
    cells[3].textContent = tr.side;
    return r;
  }
}
