// The candle chart: candlesticks with volume beneath them in one pane and
// the quote line in a pane under it, on one time axis (lightweight-charts).
import {
  CandlestickSeries, ColorType, HistogramSeries, LineSeries, createChart,
  type IChartApi, type ISeriesApi, type Time, type UTCTimestamp, type WhitespaceData, type LineData,
} from 'lightweight-charts';
import { seconds, type Bar } from './bars';
import type { QuotePoint } from './quoteline';
import { cssVar, onThemeChange } from './theme';
import { stamp, tick } from './zone';

export class CandleChart {
  private chart: IChartApi;
  private candles: ISeriesApi<'Candlestick'>;
  private volume: ISeriesApi<'Histogram'>;
  private bid: ISeriesApi<'Line'>;
  private ask: ISeriesApi<'Line'>;
  private count = 0;
  private wantOlder: (() => void) | null = null;
  // moved: the user has moved the view (a drag, the wheel, a touch, the
  // keys) since the bars were last placed. The chart's own placing of
  // them (fitted, or kept in place) also moves the range, a frame later,
  // and a range that fits shows the oldest bar: that is no request for
  // older ones.
  private moved = false;
  private zone = '';

  constructor(el: HTMLElement) {
    this.chart = createChart(el, {
      autoSize: true,
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 2 },
      rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.25 } },
      // The logo injects a <style> element, which the page's CSP refuses; the
      // page credits TradingView in a link under the chart instead.
      layout: { attributionLogo: false, fontFamily: 'system-ui, sans-serif' },
      localization: { locale: 'en-GB' },
    });
    this.setZone('UTC');
    this.candles = this.chart.addSeries(CandlestickSeries, { priceLineVisible: true });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceScaleId: 'volume', priceFormat: { type: 'volume' }, lastValueVisible: false, priceLineVisible: false,
    });
    this.chart.priceScale('volume').applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.bid = this.chart.addSeries(LineSeries, { lineWidth: 1, title: 'bid', priceLineVisible: false }, 1);
    this.ask = this.chart.addSeries(LineSeries, { lineWidth: 1, title: 'ask', priceLineVisible: false }, 1);
    this.chart.panes()[1]?.setStretchFactor(0.3);
    // Scrolling left to within a few bars of the oldest asks for older ones.
    this.chart.timeScale().subscribeVisibleLogicalRangeChange(() => this.askOlder());
    // Seen on the way down, before the chart's own handlers take them.
    const moving = () => { this.moved = true; };
    for (const type of ['pointerdown', 'wheel', 'touchstart']) el.addEventListener(type, moving, { capture: true, passive: true });
    el.addEventListener('keydown', (e) => this.key(e));
    this.colours();
    onThemeChange(() => this.colours());
  }

  // key moves the focused chart: arrows a quarter of the view, + and −
  // zoom, End back to the newest bar.
  private key(e: KeyboardEvent): void {
    const ts = this.chart.timeScale();
    const r = ts.getVisibleLogicalRange();
    if (!r) return;
    const span = r.to - r.from;
    let shift = 0, zoom = 1;
    switch (e.key) {
      case 'ArrowLeft': shift = -span / 4; break;
      case 'ArrowRight': shift = span / 4; break;
      case '+': case '=': zoom = 0.8; break;
      case '-': zoom = 1.25; break;
      case 'End': e.preventDefault(); ts.scrollToRealTime(); return;
      default: return;
    }
    e.preventDefault();
    this.moved = true;
    const mid = (r.from + r.to) / 2 + shift, half = (span * zoom) / 2;
    ts.setVisibleLogicalRange({ from: mid - half, to: mid + half });
  }

  onNeedOlder(fn: () => void): void {
    this.wantOlder = fn;
  }

  // askOlder asks for older bars when the user has moved the view to within
  // a few bars of the oldest. The view asks again as a load ends: a move
  // made while it ran was turned away, and no further move may come.
  askOlder(): void {
    const r = this.chart.timeScale().getVisibleLogicalRange();
    if (r && r.from < 5 && this.count > 0 && this.moved) this.wantOlder?.();
  }

  private colours(): void {
    const up = cssVar('--up'), down = cssVar('--down');
    this.chart.applyOptions({
      layout: { background: { type: ColorType.Solid, color: cssVar('--panel') }, textColor: cssVar('--text') },
      grid: { vertLines: { color: cssVar('--grid') }, horzLines: { color: cssVar('--grid') } },
    });
    this.candles.applyOptions({ upColor: up, downColor: down, borderUpColor: up, borderDownColor: down, wickUpColor: up, wickDownColor: down });
    this.bid.applyOptions({ color: cssVar('--bid') });
    this.ask.applyOptions({ color: cssVar('--ask') });
    this.volumeColours = [cssVar('--up-soft'), cssVar('--down-soft')];
  }
  private volumeColours = ['', ''];

  private candle(b: Bar) {
    return { time: seconds(b.window_start) as UTCTimestamp, open: +b.open, high: +b.high, low: +b.low, close: +b.close };
  }

  private bar(b: Bar) {
    return { time: seconds(b.window_start) as UTCTimestamp, value: +b.volume, color: this.volumeColours[+b.close >= +b.open ? 0 : 1] };
  }

  // setBars draws bars (oldest first). keepView holds the bars in sight
  // where they were when older ones arrive before them.
  setBars(bars: Bar[], keepView: boolean): void {
    const ts = this.chart.timeScale();
    const before = keepView ? ts.getVisibleLogicalRange() : null;
    const added = bars.length - this.count;
    this.candles.setData(bars.map((b) => this.candle(b)));
    this.volume.setData(bars.map((b) => this.bar(b)));
    this.count = bars.length;
    // A new set of bars (a symbol, an interval, a range) waits for the
    // user to move again; older bars arriving as the user drags keep
    // the drag going.
    if (!keepView) this.moved = false;
    if (before) ts.setVisibleLogicalRange({ from: before.from + added, to: before.to + added });
    else ts.fitContent();
  }

  // updateLast redraws the newest bar, the index-th held (a live trade
  // moved it, or opened it).
  updateLast(b: Bar, index: number): void {
    this.candles.update(this.candle(b));
    this.volume.update(this.bar(b));
    this.count = Math.max(this.count, index + 1);
  }

  // quoteLine is what the quote line's series hold, for the browser test.
  quoteLine(): { bid: Array<{ time: number; value: number }>; ask: Array<{ time: number; value: number }> } {
    const held = (s: ISeriesApi<'Line'>) => s.data().flatMap((d) => ('value' in d ? [{ time: d.time as number, value: d.value }] : []));
    return { bid: held(this.bid), ask: held(this.ask) };
  }

  setQuotes(points: QuotePoint[]): void {
    const line = (k: 'bid' | 'ask'): Array<LineData | WhitespaceData> =>
      points.map((p) => (p[k] === null ? { time: p.time as UTCTimestamp } : { time: p.time as UTCTimestamp, value: p[k] as number }));
    this.bid.setData(line('bid'));
    this.ask.setData(line('ask'));
  }

  // drawn is what the candle series holds, for the browser test.
  drawn(): Array<{ time: number; open: number; high: number; low: number; close: number }> {
    return this.candles.data().map((d) => {
      const c = d as { time: number; open: number; high: number; low: number; close: number };
      return { time: c.time, open: c.open, high: c.high, low: c.low, close: c.close };
    });
  }

  // setZone labels the time axis and the crosshair in a zone (the
  // exchange's); the bars stay where they are.
  setZone(zone: string): void {
    if (zone === this.zone) return;
    this.zone = zone;
    this.chart.applyOptions({
      localization: { locale: 'en-GB', timeFormatter: (t: Time) => stamp(t as number, zone) },
      timeScale: { tickMarkFormatter: (t: Time, type: number) => tick(t as number, type, zone) },
    });
  }
}
