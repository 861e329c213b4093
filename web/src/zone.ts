// Times as people read a market: in the exchange's own zone (its IANA name,
// from GET /v1/symbols: an ASX day runs 10:00 to 16:00 in Sydney, not
// 23:00 to 05:00 UTC), UTC for venues that trade round the clock.
const formats = new Map<string, Intl.DateTimeFormat>();

function format(zone: string, opts: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = zone + JSON.stringify(opts);
  let f = formats.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hourCycle: 'h23', ...opts });
    formats.set(key, f);
  }
  return f;
}

// parts of an instant (seconds since the epoch) in a zone.
function parts(sec: number, zone: string, opts: Intl.DateTimeFormatOptions): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of format(zone, opts).formatToParts(new Date(sec * 1000))) out[p.type] = p.value;
  return out;
}

// stamp is an instant as "2014-03-11 10:05" in the zone (the crosshair's label).
export function stamp(sec: number, zone: string): string {
  const p = parts(sec, zone, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

// clock is an instant's time of day to the millisecond ("10:05:07.250"), for the tape.
export function clock(sec: number, zone: string): string {
  const p = parts(sec, zone, { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 });
  return `${p.hour}:${p.minute}:${p.second}.${p.fractionalSecond}`;
}

// The chart's kinds of tick mark (lightweight-charts' TickMarkType).
const enum Tick { Year, Month, DayOfMonth, Time, TimeWithSeconds }

// tick labels a mark of the chart's time axis in the zone.
export function tick(sec: number, type: number, zone: string): string {
  switch (type) {
    case Tick.Year:
      return parts(sec, zone, { year: 'numeric' }).year;
    case Tick.Month:
      return parts(sec, zone, { month: 'short' }).month;
    case Tick.DayOfMonth:
      return parts(sec, zone, { day: 'numeric' }).day;
    case Tick.TimeWithSeconds: {
      const p = parts(sec, zone, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
      return `${p.hour}:${p.minute}:${p.second}`;
    }
    default: {
      const p = parts(sec, zone, { hour: '2-digit', minute: '2-digit' });
      return `${p.hour}:${p.minute}`;
    }
  }
}

// wallOf is an instant's date and clock in the zone, to the minute, as the
// milliseconds of that wall time read as UTC.
function wallOf(ms: number, zone: string): number {
  const p = parts(ms / 1000, zone, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute);
}

// localInput is an instant (RFC 3339) as a datetime-local field's value in
// the zone ("2014-03-11T10:00"), to the minute.
export function localInput(rfc3339: string, zone: string): string {
  const ms = Date.parse(rfc3339);
  return Number.isNaN(ms) ? '' : new Date(wallOf(ms, zone)).toISOString().slice(0, 16);
}

// fromLocalInput reads a datetime-local field's value ("2014-03-11T10:00")
// in the zone, as the server does a time without an offset: a time the
// clocks pass twice is the earlier instant, and one they skip is null.
export function fromLocalInput(value: string, zone: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value);
  if (!m) return null;
  const naive = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  // Each offset in force within a day of the time is a candidate; one
  // counts when the instant it gives shows the same wall clock.
  let first: number | null = null;
  for (const probe of [naive - 86400000, naive, naive + 86400000]) {
    const t = naive - (wallOf(probe, zone) - probe);
    if (wallOf(t, zone) === naive && (first === null || t < first)) first = t;
  }
  return first === null ? null : new Date(first).toISOString().slice(0, 19) + 'Z';
}
