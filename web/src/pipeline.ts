// The pipeline view: small time series (uPlot) of the pipeline's history
// (GET /v1/pipeline/history, the steps since the last point read again
// with each poll), tables of its present state (GET /v1/pipeline, every
// 2 s) and the last commits (GET /v1/commits, every 5 s). It polls only
// while it is shown.
import uPlot from 'uplot';
import { get } from './api';
import { chartData, chartSpecs, commitTime, merge, minutesSince, type ChartSpec, type Commit, type History, type PipelineNow } from './pipeline-data';
import { cssVar, onThemeChange } from './theme';

const keepMinutes = 15;
const keepSeconds = keepMinutes * 60;
const palette = ['--series-1', '--series-2', '--series-3', '--series-4', '--series-5'];
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumFractionDigits: 2 });

export class PipelineView {
  private history: History | null = null;
  private now: PipelineNow | null = null;
  private charts = new Map<string, uPlot>();
  private timers: number[] = [];
  private resize = new ResizeObserver(() => this.fit());

  constructor(private root: HTMLElement) {
    const frag = document.createDocumentFragment();
    for (const spec of chartSpecs) {
      const fig = document.createElement('figure');
      const cap = document.createElement('figcaption');
      cap.id = `chart-${spec.id}-title`;
      cap.textContent = spec.title;
      const box = document.createElement('div');
      box.id = `chart-${spec.id}`;
      box.setAttribute('role', 'img');
      box.setAttribute('aria-labelledby', cap.id);
      fig.append(cap);
      if (spec.top !== undefined) {
        // Said in words when there is no line to draw.
        const note = document.createElement('p');
        note.id = `chart-${spec.id}-note`;
        note.className = 'chart-note';
        note.textContent = `None behind in the last ${keepMinutes} minutes.`;
        fig.append(note);
      }
      fig.append(box);
      frag.append(fig);
    }
    this.el('#pipeline-charts').replaceChildren(frag);
    onThemeChange(() => this.rebuild());
  }

  latest(): PipelineNow | null {
    return this.now;
  }

  // chart is what a small chart draws (its lines' labels and columns), for
  // the browser test.
  chart(id: string): { labels: string[]; data: Array<Array<number | null>> } | null {
    const spec = chartSpecs.find((s) => s.id === id);
    return spec && this.history ? chartData(this.history, spec) : null;
  }

  async show(): Promise<void> {
    if (this.timers.length) return;
    if (!this.history) {
      this.history = { step_seconds: 2, t: [], series: {} };
      this.rebuild();
    }
    this.poll();
    this.commits();
    this.timers = [window.setInterval(() => this.poll(), 2000), window.setInterval(() => this.commits(), 5000)];
  }

  hide(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private async poll(): Promise<void> {
    try {
      let h = this.history!;
      const minutes = minutesSince(h, Date.now() / 1000, keepMinutes);
      const [now, fresh] = await Promise.all([get<PipelineNow>('/v1/pipeline'), get<History>(`/v1/pipeline/history?minutes=${minutes}`)]);
      this.now = now.data;
      if (h.t.length && Object.keys(fresh.data.series).some((k) => !h.series[k])) {
        // A line new to the page (a partition now among the most behind):
        // its past is in the API's history too, so all of it is read again.
        const all = await get<History>(`/v1/pipeline/history?minutes=${keepMinutes}`);
        h = this.history = { step_seconds: all.data.step_seconds, t: [], series: {} };
        merge(h, all.data, keepSeconds);
      }
      h.step_seconds = fresh.data.step_seconds;
      merge(h, fresh.data, keepSeconds);
      for (const spec of chartSpecs) this.draw(spec);
      this.present(now.data);
      this.status('');
    } catch (err) {
      this.status(`The pipeline's state is not available: ${(err as Error).message}`);
    }
  }

  private async commits(): Promise<void> {
    try {
      const { data } = await get<Commit[]>('/v1/commits?limit=20');
      rows(this.el('#commits tbody'), data.map((c) => [
        c.timestamp.replace('T', ' ').slice(0, 19), c.table, c.snapshot_id, c.operation,
        c.rows.toLocaleString('en'), c.files.toLocaleString('en'), c.duration_ms === null ? '—' : `${c.duration_ms.toFixed(1)} ms`,
      ]));
    } catch {
      /* the poll's status line says what is missing */
    }
  }

  private el(sel: string): HTMLElement {
    return this.root.querySelector(sel) as HTMLElement;
  }

  private status(text: string): void {
    this.el('#pipeline-status').textContent = text;
  }

  // present fills the tables and figures of the poll's present state.
  private present(p: PipelineNow): void {
    // null: not known yet, or no process read exports it
    const fmt = (n: number | null, d = 1) => (n === null ? '—' : n.toLocaleString('en', { maximumFractionDigits: d }));
    this.el('[data-stat=rate]').textContent = `${fmt(p.rates.stored_per_s)}/s`;
    this.el('[data-stat=lag]').textContent = fmt(p.lag.total_messages, 0);
    const deg = this.el('[data-stat=degradation]');
    deg.textContent = p.degradation ? `${p.degradation.level} ${p.degradation.name}` : '— (no sink read)';
    deg.dataset.level = p.degradation ? String(p.degradation.level) : '';
    this.el('[data-stat=pool]').textContent = p.pool
      ? `${p.pool.active}/${p.pool.size} (${Math.round(p.pool.utilisation * 100)}%), ${p.pool.waiting} waiting` : '—';
    // The partitions behind; none listed when every one is caught up.
    rows(this.el('#partitions tbody'), p.lag.partitions.filter((x) => x.messages > 0).slice(0, 10).map((x) => [x.topic, String(x.partition), fmt(x.messages, 0), `${fmt(x.seconds, 2)} s`]));
    rows(this.el('#breakers tbody'), p.breakers.map((b) => [b.name, b.state, String(b.consecutive_failures), String(b.opened_total), String(b.rejections_total)]));
    rows(this.el('#dead-letters tbody'), p.dead_letters.by_reason.map((d) => [d.reason, fmt(d.count, 0)]));
    rows(this.el('#feeds tbody'), p.feeds.map((f) => [f.client, `${fmt(f.produced_per_s)}/s`, fmt(f.produced_total, 0)]));
    rows(this.el('#tables tbody'), p.tables.map((t) => [t.table, fmt(t.rows, 0), fmt(t.data_files, 0), fmt(t.snapshots, 0), commitTime(t.last_commit)]));
    rows(this.el('#sources tbody'), p.sources.map((s) => [s.name + (s.url ? ` (${s.url})` : ''), s.up ? 'up' : 'down', s.error]));
  }

  private rebuild(): void {
    for (const u of this.charts.values()) u.destroy();
    this.charts.clear();
    if (this.history) for (const spec of chartSpecs) this.draw(spec);
  }

  private draw(spec: ChartSpec): void {
    const { labels, data } = chartData(this.history!, spec);
    const note = this.root.querySelector<HTMLElement>(`#chart-${spec.id}-note`);
    if (note) {
      // No line: the words alone, not empty axes.
      note.hidden = labels.length > 0;
      this.el(`#chart-${spec.id}`).hidden = labels.length === 0;
    }
    const u = this.charts.get(spec.id);
    // The same lines: new points. Other lines (a table new, a partition
    // among the most behind in another's place): drawn again, named.
    if (u && u.series.length === labels.length + 1 && labels.every((l, i) => u.series[i + 1].label === l)) {
      u.setData(data as uPlot.AlignedData);
      return;
    }
    u?.destroy();
    const box = this.el(`#chart-${spec.id}`);
    const text = cssVar('--text-soft'), grid = cssVar('--grid');
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const made = new uPlot({
      width: Math.max(200, box.clientWidth), height: 140,
      legend: { show: true, live: false },
      cursor: { show: true, drag: { x: false, y: false } },
      scales: { x: { time: true } },
      // Time labels (9:30am) at least 70 px apart: at uPlot's default 40
      // a narrow chart ran them together.
      // Compact values (12K, 1.5M) fit the y axis's width however large.
      axes: [{ ...axis, space: 70 }, { ...axis, size: 50, values: (_u: uPlot, splits: number[]) => splits.map((v) => compact.format(v)) }],
      series: [{}, ...labels.map((label, i) => ({ label, stroke: cssVar(palette[i % palette.length]), width: 1.5, spanGaps: false }))],
    }, data as uPlot.AlignedData, box);
    this.charts.set(spec.id, made);
    this.resize.observe(box);
  }

  private fit(): void {
    for (const [id, u] of this.charts) {
      const w = this.el(`#chart-${id}`).clientWidth;
      if (w && Math.abs(w - u.width) > 4) u.setSize({ width: w, height: 140 });
    }
  }
}

// rows replaces a table body's rows with cells of text (a row saying so
// when there are none).
function rows(body: HTMLElement, cells: string[][]): void {
  const frag = document.createDocumentFragment();
  for (const r of cells) {
    const tr = document.createElement('tr');
    for (const c of r) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    frag.append(tr);
  }
  if (!cells.length) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = body.closest('table')?.querySelectorAll('th').length ?? 1;
    td.className = 'none';
    td.textContent = 'none';
    tr.append(td);
    frag.append(tr);
  }
  body.replaceChildren(frag);
}
