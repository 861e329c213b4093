// Time travel: the trades table as it stood at a snapshot (from
// GET /v1/snapshots) or at a time, with a banner naming the snapshot the
// answer was read from and a way back to live.
import { get } from './api';

const listed = 100; // the most snapshots the API lists

export interface AsOf {
  snapshot?: string; // a trades snapshot id
  time?: string; // RFC 3339
}

interface Snapshot {
  snapshot_id: string;
  timestamp: string;
  operation: string;
  current: boolean;
  summary: Record<string, string>;
}

export class TimeTravel {
  private snapshots: Snapshot[] = [];
  private quotesSince: string | null = null; // the quotes table's first snapshot, when the list reaches it
  private asOf: AsOf | null = null;

  constructor(
    private select: HTMLSelectElement,
    private time: HTMLInputElement,
    go: HTMLButtonElement,
    private banner: HTMLElement,
    private onChange: (asOf: AsOf | null) => void,
  ) {
    select.addEventListener('change', () => this.set(select.value ? { snapshot: select.value } : null));
    go.addEventListener('click', () => {
      if (this.time.value) this.set({ time: new Date(this.time.value + 'Z').toISOString() });
    });
    (banner.querySelector('button') as HTMLButtonElement).addEventListener('click', () => this.set(null));
    select.addEventListener('focus', () => this.refresh());
  }

  current(): AsOf | null {
    return this.asOf;
  }

  // snapshotTime is when a listed snapshot was committed: the quote line,
  // from another table, is read as of that time.
  snapshotTime(id: string): string | undefined {
    return this.snapshots.find((s) => s.snapshot_id === id)?.timestamp;
  }

  set(asOf: AsOf | null, notify = true): void {
    this.asOf = asOf;
    this.select.value = asOf?.snapshot ?? '';
    if (!asOf?.time) this.time.value = '';
    else this.time.value = asOf.time.slice(0, 19);
    if (!asOf) this.banner.hidden = true;
    if (notify) this.onChange(asOf);
  }

  // quotesAt says whether the quotes table existed at a time (a time
  // before its first snapshot has no quotes to read; reading one is refused).
  quotesAt(time: string): boolean {
    return !this.quotesSince || time >= this.quotesSince;
  }

  // showing fills the banner once the bars answered: the snapshot they
  // were read from, as the answer names it (meta.snapshot_id; failing
  // that, the one asked for, or the last committed by the time asked for).
  showing(snapshotId: string | number | undefined): string | null {
    if (!this.asOf) {
      this.banner.hidden = true;
      return snapshotId === undefined ? null : String(snapshotId);
    }
    const t = this.asOf.time;
    const id = String(snapshotId ?? this.asOf.snapshot ?? (t && this.snapshots.find((s) => s.timestamp <= t)?.snapshot_id) ?? 'none');
    const when = this.asOf.time ? ` as of ${this.asOf.time}` : this.snapshotTime(id) ? `, committed ${this.snapshotTime(id)}` : '';
    (this.banner.querySelector('.what') as HTMLElement).textContent = `Showing the trades table at snapshot ${id}${when}.`;
    this.banner.hidden = false;
    return id === 'none' ? null : id;
  }

  async refresh(): Promise<void> {
    try {
      const [trades, quotes] = await Promise.all([
        get<Snapshot[]>(`/v1/snapshots?table=trades&limit=${listed}`), get<Snapshot[]>(`/v1/snapshots?table=quotes&limit=${listed}`)]);
      this.snapshots = trades.data;
      this.quotesSince = quotes.data.length < listed ? (quotes.data.at(-1)?.timestamp ?? '9999') : null;
    } catch {
      return; // the list stays as it was; the select still works with it
    }
    const keep = this.select.value;
    const opts = [new Option('Live (latest)', '')];
    for (const s of this.snapshots) {
      const rows = s.summary['added-records'] ?? '?';
      opts.push(new Option(`${s.timestamp.replace('T', ' ').slice(0, 19)} · ${s.operation} +${rows} rows · ${s.snapshot_id}`, s.snapshot_id));
    }
    this.select.replaceChildren(...opts);
    this.select.value = keep;
    if (this.select.value !== keep && keep) {
      // A snapshot no longer listed (expired) still applies: keep it named.
      this.select.append(new Option(`snapshot ${keep}`, keep));
      this.select.value = keep;
    }
  }
}
