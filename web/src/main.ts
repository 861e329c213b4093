// The dashboard's entry: theme, the two views (market, pipeline) chosen
// by the header's tabs, the view's state kept in the address, and the
// read-only handle the browser test reads (window.k2dash).
import './style.css';
import type { Bar } from './bars';
import { MarketView, type MarketState } from './market';
import type { PipelineNow } from './pipeline-data';
import type { PipelineView } from './pipeline';
import { initTheme } from './theme';

type View = 'market' | 'pipeline';

const params = new URLSearchParams(location.search);
initTheme(document.getElementById('theme') as HTMLButtonElement);

const market = new MarketView(document.getElementById('market')!, saveState);
let pipeline: PipelineView | null = null;

// saveState keeps the view in the address, so a reload or a shared link
// shows the same bars.
function saveState(s: MarketState): void {
  const q = new URLSearchParams();
  if (view() === 'pipeline') q.set('view', 'pipeline');
  q.set('symbol', s.symbol);
  q.set('exchange', s.exchange);
  q.set('interval', s.interval);
  if (s.start) q.set('start', s.start);
  if (s.end) q.set('end', s.end);
  if (s.asOf?.snapshot) q.set('snapshot', s.asOf.snapshot);
  if (s.asOf?.time) q.set('as_of', s.asOf.time);
  history.replaceState(null, '', '?' + q.toString());
}

function view(): View {
  return document.getElementById('pipeline')!.hidden ? 'market' : 'pipeline';
}

async function show(v: View): Promise<void> {
  for (const tab of document.querySelectorAll<HTMLButtonElement>('#views button')) {
    tab.setAttribute('aria-current', String(tab.value === v ? 'page' : false));
  }
  document.getElementById('market')!.hidden = v !== 'market';
  document.getElementById('pipeline')!.hidden = v !== 'pipeline';
  const s = market.current();
  if (s) saveState(s);
  else {
    const q = new URLSearchParams(location.search);
    if (v === 'pipeline') q.set('view', 'pipeline');
    else q.delete('view');
    history.replaceState(null, '', '?' + q.toString());
  }
  if (v === 'pipeline') {
    // uPlot and the view load only when first shown.
    if (!pipeline) {
      const { PipelineView } = await import('./pipeline');
      pipeline ??= new PipelineView(document.getElementById('pipeline')!);
    }
    await pipeline.show();
  } else pipeline?.hide();
}

for (const tab of document.querySelectorAll<HTMLButtonElement>('#views button')) {
  tab.addEventListener('click', () => show(tab.value as View));
}

declare global {
  interface Window {
    k2dash: {
      candles(): Bar[];
      drawn(): ReturnType<MarketView['chart']['drawn']>;
      snapshot(): string | null;
      state(): MarketState | null;
      loads(): number;
      tapeCount(): number;
      tapeRows(): number;
      quote(): ReturnType<MarketView['quote']['current']>;
      quoteLine(): ReturnType<MarketView['chart']['quoteLine']> & { loads: number };
      pipeline(): PipelineNow | null;
      pipelineChart(id: string): ReturnType<PipelineView['chart']>;
    };
  }
}

window.k2dash = {
  candles: () => market.candles(),
  drawn: () => market.chart.drawn(),
  snapshot: () => market.snapshot(),
  state: () => market.current(),
  loads: () => market.version,
  tapeCount: () => market.tape.count(),
  tapeRows: () => market.tape.rows(),
  quote: () => market.quote.current(),
  // loads: the load (as loads() counts) whose quotes the line holds
  quoteLine: () => ({ ...market.chart.quoteLine(), loads: market.quotesVersion }),
  pipeline: () => pipeline?.latest() ?? null,
  pipelineChart: (id: string) => pipeline?.chart(id) ?? null,
};

show(params.get('view') === 'pipeline' ? 'pipeline' : 'market');
market.start({
  symbol: params.get('symbol') ?? undefined,
  exchange: params.get('exchange') ?? undefined,
  interval: (params.get('interval') ?? undefined) as MarketState['interval'] | undefined,
  start: params.get('start') ?? undefined,
  end: params.get('end') ?? undefined,
  asOf: params.get('snapshot') ? { snapshot: params.get('snapshot')! } : params.get('as_of') ? { time: params.get('as_of')! } : undefined,
}).catch((err) => {
  document.getElementById('market-status')!.textContent = `Could not list the instruments: ${(err as Error).message}`;
});
