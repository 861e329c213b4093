// The market view: one instrument's bars at an interval over a range (or
// as of a snapshot), scrolled back on demand, the quote line under them,
// and, when live, the last bar kept up to date from the tape.
import { ApiError, get, query } from './api';
import { applyTrade, intervals, prepend, seconds, rfc3339, type Bar, type Interval, type Trade } from './bars';
import { CandleChart } from './chart';
import { SymbolPicker, type Instrument } from './picker';
import { QuotePanel } from './quote';
import { quotePoints, type Quote } from './quoteline';
import { Tape } from './tape';
import { TimeTravel, type AsOf } from './timetravel';
import { fromLocalInput, localInput } from './zone';

const page = 1000; // bars a request
const quoteLimit = 10000; // the API's most quotes a request: the range's latest
const maxQuoteSpan = 31 * 86400; // the records routes' widest range
const redrawMs = 250;

export interface MarketState {
  symbol: string;
  exchange: string;
  interval: Interval;
  start?: string;
  end?: string;
  asOf: AsOf | null;
}

export class MarketView {
  readonly chart: CandleChart;
  readonly tape: Tape;
  readonly quote: QuotePanel;
  readonly travel: TimeTravel;
  private picker: SymbolPicker;
  private zones = new Map<string, string>(); // exchange → IANA zone
  private state: MarketState | null = null;
  private bars: Bar[] = [];
  private shown: string | null = null; // the snapshot the bars were read from
  private loads = 0; // bumps on every load or page; a late answer of an older one is dropped
  private loading = false;
  private exhausted = false;
  private liveSince = 0; // trades before the bars' answer are in the bars already
  private quotes: Quote[] = [];
  private drawFrom = Infinity; // the oldest bar the tape changed since the chart was drawn
  private redraw = 0;
  version = 0; // counts finished loads, for the test handle
  quotesVersion = 0; // the load whose quote line is drawn, for the test handle

  constructor(private root: HTMLElement, private onState: (s: MarketState) => void) {
    const $ = <T extends HTMLElement>(sel: string) => root.querySelector(sel) as T;
    this.chart = new CandleChart($('#chart'));
    this.chart.onNeedOlder(() => this.older());
    this.tape = new Tape($('#tape tbody'), $('#tape-status'));
    this.quote = new QuotePanel($('#quote'));
    this.travel = new TimeTravel($('#snapshot'), $('#as-of'), $('#as-of-go'), $('#travel-banner'), (asOf) => this.update({ asOf }));
    this.picker = new SymbolPicker($('#symbol'), $('#symbol-list'), (i) => this.update({ symbol: i.symbol, exchange: i.exchange }));
    this.tape.onBatch((batch) => this.live(batch));
    for (const b of root.querySelectorAll<HTMLButtonElement>('#intervals button')) {
      b.addEventListener('click', () => this.update({ interval: b.value as Interval }));
    }
    $('#range').addEventListener('submit', (e) => {
      e.preventDefault();
      // The fields hold the exchange's wall time, as the chart shows it.
      const zone = this.zoneOf(this.state);
      const range: Partial<MarketState> = {};
      for (const [key, id] of [['start', 'range-start'], ['end', 'range-end']] as const) {
        const v = ($('#' + id) as HTMLInputElement).value;
        const at = v ? fromLocalInput(v, zone) : undefined;
        if (at === null) {
          this.status(`${v.replace('T', ' ')} does not exist in ${zone}: the clocks skip it.`);
          return;
        }
        range[key] = at;
      }
      this.update(range);
    });
  }

  // start lists the instruments and shows the one asked for (or the one
  // with most trades).
  async start(want: Partial<MarketState>): Promise<void> {
    const { data } = await get<Instrument[]>('/v1/symbols');
    this.picker.setInstruments(data);
    for (const x of data) this.zones.set(x.exchange, x.timezone || 'UTC');
    const i = data.find((x) => x.symbol === want.symbol && (!want.exchange || x.exchange === want.exchange))
      ?? data.slice().sort((a, b) => b.trades - a.trades)[0];
    if (!i) {
      this.status('The lake holds no instrument yet: load data or start a feed.');
      return;
    }
    this.picker.show(i);
    const interval = intervals.includes(want.interval as Interval) ? (want.interval as Interval) : '1m';
    this.travel.set(want.asOf ?? null, false);
    if (want.asOf) await this.travel.refresh();
    this.update({ symbol: i.symbol, exchange: i.exchange, interval, start: want.start, end: want.end, asOf: want.asOf ?? null });
  }

  current(): MarketState | null {
    return this.state;
  }

  candles(): Bar[] {
    return this.bars.map((b) => ({ ...b }));
  }

  snapshot(): string | null {
    return this.shown;
  }

  private update(change: Partial<MarketState>): void {
    const prev = this.state;
    const s = { interval: '1m' as Interval, asOf: null, ...prev, ...change } as MarketState;
    this.state = s;
    for (const b of this.root.querySelectorAll<HTMLButtonElement>('#intervals button')) b.setAttribute('aria-pressed', String(b.value === s.interval));
    // Times in the exchange's own zone, as its trading day is read.
    const zone = this.zoneOf(s);
    (this.root.querySelector('#range-start') as HTMLInputElement).value = s.start ? localInput(s.start, zone) : '';
    (this.root.querySelector('#range-end') as HTMLInputElement).value = s.end ? localInput(s.end, zone) : '';
    if (!prev || prev.symbol !== s.symbol || prev.exchange !== s.exchange) {
      this.chart.setZone(zone);
      this.tape.zone = this.quote.zone = zone;
      for (const el of this.root.querySelectorAll<HTMLElement>('[data-zone]')) {
        el.textContent = zone !== 'UTC' && el.dataset.zone === 'long' ? `${zone}, the exchange's time` : zone;
      }
      this.tape.follow(s.symbol, s.exchange);
      this.quote.follow(s.symbol, s.exchange);
    }
    this.onState(s);
    this.load();
  }

  private zoneOf(s: MarketState | null): string {
    return (s && this.zones.get(s.exchange)) || 'UTC';
  }

  private asOfParams(s: MarketState): Record<string, string | undefined> {
    if (!s.asOf) return {};
    return s.asOf.time ? { as_of_time: s.asOf.time } : { as_of_snapshot: s.asOf.snapshot };
  }

  // quotesAsOf is the quote line's time travel: the snapshot ids are the
  // trades table's, so quotes are read as of the snapshot's time. null:
  // the quotes table did not exist yet, and the line stays empty.
  private quotesAsOf(s: MarketState): Record<string, string | undefined> | null {
    if (!s.asOf) return {};
    const t = s.asOf.time ?? this.travel.snapshotTime(s.asOf.snapshot!);
    if (!t) return {};
    return this.travel.quotesAt(t) ? { as_of_time: t } : null;
  }

  private async load(): Promise<void> {
    const s = this.state!;
    const n = ++this.loads;
    this.loading = true;
    this.exhausted = false;
    this.status(`Loading ${s.interval} bars of ${s.symbol}…`);
    try {
      const { data, meta } = await get<Bar[]>(`/v1/bars/${s.interval}?${query({
        symbol: s.symbol, exchange: s.exchange, start_time: s.start, end_time: s.end, limit: page, order: 'desc', ...this.asOfParams(s),
      })}`);
      if (n !== this.loads) return;
      this.bars = data.reverse();
      this.drawFrom = Infinity;
      // Fewer than a page of a range with a start says nothing of the bars
      // before it, which scrolling back reads; without one, these are all.
      this.exhausted = data.length < page && !s.start;
      this.liveSince = seconds(meta.timestamp);
      this.chart.setBars(this.bars, false);
      // The previous view's quote line goes with its bars: left until this
      // range's quotes arrive, it stretched the time axis to its own span.
      this.quotes = [];
      this.chart.setQuotes(quotePoints(this.bars, this.quotes));
      this.shown = this.travel.showing(meta.snapshot_id);
      this.status(this.bars.length ? '' : `No ${s.interval} bars of ${s.symbol} in this range.`);
      this.version++;
      await this.loadQuotes(n, this.bars);
    } catch (err) {
      if (n === this.loads) this.fail(err);
    } finally {
      this.loaded(n);
    }
  }

  // older fetches the page of bars before the oldest held, as the chart is
  // scrolled to it.
  private async older(): Promise<void> {
    const s = this.state;
    if (!s || this.loading || this.exhausted || !this.bars.length) return;
    const n = ++this.loads;
    this.loading = true;
    try {
      const { data } = await get<Bar[]>(`/v1/bars/${s.interval}?${query({
        symbol: s.symbol, exchange: s.exchange, end_time: this.bars[0].window_start, limit: page, order: 'desc', ...this.asOfParams(s),
      })}`);
      if (n !== this.loads) return;
      this.exhausted = data.length < page;
      const older = data.reverse();
      this.bars = prepend(this.bars, older);
      this.chart.setBars(this.bars, true); // the live bar's changes too
      this.drawFrom = Infinity;
      this.version++;
      await this.loadQuotes(n, older);
    } catch (err) {
      if (n === this.loads) this.fail(err);
    } finally {
      this.loaded(n);
    }
  }

  // loaded ends load n, unless a later one has begun. The chart asks for
  // older bars again: a drag back made while the load ran was turned away.
  private loaded(n: number): void {
    if (n !== this.loads) return;
    this.loading = false;
    this.chart.askOlder();
  }

  // loadQuotes reads the quotes over bars' span (the latest quoteLimit of
  // them) and redraws the quote line over every bar held.
  private async loadQuotes(n: number, bars: Bar[]): Promise<void> {
    const s = this.state!;
    const asOf = this.quotesAsOf(s);
    if (!bars.length || !asOf) {
      this.chart.setQuotes(quotePoints(this.bars, this.quotes));
      this.quotesVersion = this.version;
      return;
    }
    const end = seconds(bars[bars.length - 1].window_end);
    const start = Math.max(seconds(bars[0].window_start), end - maxQuoteSpan);
    const { data } = await get<Quote[]>(`/v1/quotes?${query({
      symbol: s.symbol, exchange: s.exchange, start_time: rfc3339(start), end_time: rfc3339(end), limit: quoteLimit, order: 'desc',
      fields: 'symbol,exchange,timestamp,bid_price,bid_quantity,ask_price,ask_quantity', ...asOf,
    })}`);
    if (n !== this.loads) return;
    this.quotes = this.quotes.concat(data);
    this.chart.setQuotes(quotePoints(this.bars, this.quotes));
    this.quotesVersion = this.version;
  }

  // live folds the tape's trades into the last bar while the view is live
  // (no snapshot, no end to the range); the chart is redrawn at most every
  // redrawMs, which is all an eye follows and spares a full canvas
  // repaint a frame.
  private live(batch: Trade[]): void {
    const s = this.state;
    if (!s || s.asOf || s.end || this.loading || !this.bars.length) return;
    const len = this.bars.length;
    let changed = false;
    for (const tr of batch) if (seconds(tr.timestamp) >= this.liveSince && applyTrade(this.bars, s.interval, tr)) changed = true;
    if (!changed) return;
    this.drawFrom = Math.min(this.drawFrom, len - 1);
    if (!this.redraw) this.redraw = window.setTimeout(() => this.drawLive(), redrawMs);
  }

  private drawLive(): void {
    this.redraw = 0;
    // The chart takes updates to its last bar only: the old last first.
    for (let i = this.drawFrom; i < this.bars.length; i++) this.chart.updateLast(this.bars[i], i);
    this.drawFrom = Infinity;
  }

  private fail(err: unknown): void {
    const e = err as ApiError;
    this.status(e.status === 401 || e.status === 403 ? 'The API refused the key: reload to enter another.' : `Could not load: ${e.message}`);
  }

  private status(text: string): void {
    const el = this.root.querySelector('#market-status') as HTMLElement;
    el.textContent = text;
  }
}
