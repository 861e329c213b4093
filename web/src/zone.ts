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
