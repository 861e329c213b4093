// The symbol picker: an ARIA 1.2 combobox searching every instrument in the
// lake (GET /v1/symbols), each shown with its exchange and market.

export interface Instrument {
  symbol: string;
  exchange: string;
  market: string;
  timezone: string; // the exchange's IANA zone ("" if K2 does not know it)
  trades: number;
  quotes: number;
  first_trade: string | null;
  last_trade: string | null;
}

const maxShown = 50;

export class SymbolPicker {
  private all: Instrument[] = [];
  private shown: Instrument[] = [];
  private active = -1;
  private chosen: Instrument | null = null;

  constructor(private input: HTMLInputElement, private list: HTMLUListElement, private onPick: (i: Instrument) => void) {
    input.addEventListener('input', () => this.open(input.value));
    input.addEventListener('focus', () => input.select());
    input.addEventListener('keydown', (e) => this.key(e));
    input.addEventListener('blur', () => setTimeout(() => this.close(true), 150));
    list.addEventListener('mousedown', (e) => e.preventDefault()); // keep focus in the input
    list.addEventListener('click', (e) => {
      const li = (e.target as HTMLElement).closest('li');
      if (li) this.pick(this.shown[Number(li.dataset.index)]);
    });
  }

  setInstruments(all: Instrument[]): void {
    this.all = all;
  }

  // show names the chosen instrument in the input without opening the list.
  show(i: Instrument): void {
    this.chosen = i;
    this.input.value = `${i.symbol} · ${i.exchange}`;
  }

  private matches(q: string): Instrument[] {
    const s = q.trim().toUpperCase().replace(/\s*·.*$/, '');
    const starts = [], contains = [];
    for (const i of this.all) {
      const name = i.symbol.toUpperCase();
      if (!s || name.startsWith(s)) starts.push(i);
      else if (name.includes(s) || i.exchange.toUpperCase() === s || i.market.toUpperCase().startsWith(s)) contains.push(i);
    }
    return starts.concat(contains).slice(0, maxShown);
  }

  private open(q: string): void {
    this.shown = this.matches(q);
    this.active = this.shown.length ? 0 : -1;
    this.render();
  }

  private close(restore: boolean): void {
    this.list.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
    this.input.removeAttribute('aria-activedescendant');
    if (restore && this.chosen && document.activeElement !== this.input) this.show(this.chosen);
  }

  private pick(i: Instrument | undefined): void {
    if (!i) return;
    this.show(i);
    this.close(false);
    this.onPick(i);
  }

  private key(e: KeyboardEvent): void {
    const isOpen = !this.list.hidden;
    switch (e.key) {
      case 'ArrowDown':
      case 'ArrowUp':
        e.preventDefault();
        if (!isOpen) { this.open(''); return; }
        if (!this.shown.length) return;
        this.active = (this.active + (e.key === 'ArrowDown' ? 1 : -1) + this.shown.length) % this.shown.length;
        this.render();
        break;
      case 'Enter':
        if (isOpen && this.active >= 0) {
          e.preventDefault();
          this.pick(this.shown[this.active]);
        }
        break;
      case 'Escape':
        if (isOpen) {
          e.preventDefault();
          this.close(false);
          if (this.chosen) this.show(this.chosen);
        }
        break;
    }
  }

  private render(): void {
    const frag = document.createDocumentFragment();
    this.shown.forEach((i, n) => {
      const li = document.createElement('li');
      li.id = `symbol-option-${n}`;
      li.setAttribute('role', 'option');
      li.dataset.index = String(n);
      li.setAttribute('aria-selected', String(n === this.active));
      const name = document.createElement('span');
      name.className = 'sym';
      name.textContent = i.symbol;
      const where = document.createElement('span');
      where.className = 'where';
      where.textContent = `${i.exchange} · ${i.market} · ${i.trades.toLocaleString('en')} trades`;
      li.append(name, where);
      frag.append(li);
    });
    if (!this.shown.length) {
      const li = document.createElement('li');
      li.className = 'none';
      li.textContent = 'No instrument matches';
      frag.append(li);
    }
    this.list.replaceChildren(frag);
    this.list.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
    if (this.active >= 0) {
      const id = `symbol-option-${this.active}`;
      this.input.setAttribute('aria-activedescendant', id);
      document.getElementById(id)?.scrollIntoView({ block: 'nearest' });
    } else this.input.removeAttribute('aria-activedescendant');
  }
}
