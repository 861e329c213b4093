package marketdata

import (
	"fmt"
	"strings"
	"time"

	// The zone database is compiled into the binary so exchange-local times
	// convert the same way on every machine, with or without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Timestamp is an instant in UTC microseconds since the Unix epoch: the unit
// of Iceberg's timestamptz and Avro's timestamp-micros.
type Timestamp int64

// TimestampLayout is RFC 3339 in UTC with all six stored fractional digits.
const TimestampLayout = "2006-01-02T15:04:05.000000Z07:00"

// TimestampOf converts a time to microseconds, truncating below a microsecond.
func TimestampOf(t time.Time) Timestamp { return Timestamp(t.UnixMicro()) }

// Now is the current time in microseconds.
func Now() Timestamp { return TimestampOf(time.Now()) }

// Time returns the instant as a UTC time.
func (t Timestamp) Time() time.Time { return time.UnixMicro(int64(t)).UTC() }

// String formats the instant as RFC 3339 UTC with microseconds.
func (t Timestamp) String() string { return string(t.AppendText(make([]byte, 0, 27))) }

// AppendText appends the RFC 3339 form (TimestampLayout). Answers print a
// timestamp per column per row, so the years 1970–9999 are written
// directly rather than through time.Format's layout interpreter.
func (t Timestamp) AppendText(b []byte) []byte {
	const maxUs = 253402300800_000000 // 10000-01-01
	if t < 0 || t >= maxUs {
		return t.Time().AppendFormat(b, TimestampLayout)
	}
	us := int64(t)
	days, rest := us/86_400_000_000, us%86_400_000_000
	// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day := doy - (153*mp+2)/5 + 1
	month := mp + 3
	if month > 12 {
		month -= 12
	}
	year := yoe + era*400
	if month <= 2 {
		year++
	}
	sec := rest / 1_000_000
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, month, 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, sec/3600, 2)
	b = append(b, ':')
	b = appendDigits(b, sec/60%60, 2)
	b = append(b, ':')
	b = appendDigits(b, sec%60, 2)
	b = append(b, '.')
	b = appendDigits(b, rest%1_000_000, 6)
	return append(b, 'Z')
}

// appendDigits appends v (≥ 0) as exactly n decimal digits.
func appendDigits(b []byte, v int64, n int) []byte {
	b = append(b, "000000"[:n]...)
	for i := len(b) - 1; n > 0; i, n = i-1, n-1 {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// MarshalJSON writes the RFC 3339 form.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimestampLayout)+2)
	b = append(b, '"')
	b = t.AppendText(b)
	return append(b, '"'), nil
}

// UnmarshalJSON reads the RFC 3339 form.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, strings.Trim(string(b), `"`))
	if err != nil {
		return fmt.Errorf("timestamp %s: %w", b, err)
	}
	*t = TimestampOf(v)
	return nil
}

// EpochToTimestamp reads an integer epoch time whose unit is unknown, as
// exchange files mix them (Binance public data switched from milliseconds to
// microseconds in 2025): values with 16 or more digits are microseconds,
// 13–15 digits milliseconds, and anything else is rejected.
func EpochToTimestamp(v int64) (Timestamp, error) {
	switch {
	case v >= 1e15 && v < 1e17:
		return Timestamp(v), nil
	case v >= 1e12 && v < 1e15:
		return Timestamp(v * 1000), nil
	default:
		return 0, fmt.Errorf("epoch time %d is neither milliseconds nor microseconds", v)
	}
}

// LocalInstant returns the instant a wall-clock time names in loc (wall's
// date and clock are read; its own location is ignored). Go's time.Date
// leaves both awkward cases open, so they are decided here:
//   - a time the clocks pass twice (the hour repeated as daylight time
//     ends) names the earlier instant, as java.time and Python choose;
//   - a time the clocks skip (the hour lost as daylight time begins) names
//     none: the error says so, and the instant returned is the first after
//     the gap, for a caller that wants where the day resumes.
func LocalInstant(wall time.Time, loc *time.Location) (time.Time, error) {
	y, mo, d := wall.Date()
	h, mi, s := wall.Clock()
	naive := time.Date(y, mo, d, h, mi, s, wall.Nanosecond(), time.UTC)
	// Nearly every time lies days from any change of the zone's offset, and
	// then it has exactly the one reading time.Date gives.
	if t := time.Date(y, mo, d, h, mi, s, wall.Nanosecond(), loc); sameWall(t, naive) {
		start, end := t.ZoneBounds()
		if (start.IsZero() || t.Sub(start) > 48*time.Hour) && (end.IsZero() || end.Sub(t) > 48*time.Hour) {
			return t, nil
		}
	}
	// Each offset in force within a day of the time is a candidate; one
	// counts when the instant it gives shows the same wall clock.
	var first time.Time
	for _, probe := range []time.Time{naive.Add(-24 * time.Hour), naive, naive.Add(24 * time.Hour)} {
		t := naive.Add(-offset(probe, loc)).In(loc)
		if sameWall(t, naive) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	if !first.IsZero() {
		return first, nil
	}
	// In a gap, read with the offset before it the time falls past the
	// transition, which starts the zone period holding it.
	before := offset(naive.Add(-24*time.Hour), loc)
	resume, _ := naive.Add(-before).In(loc).ZoneBounds()
	return resume, fmt.Errorf("%s does not exist in %s: the clocks go from %s to %s",
		naive.Format("2006-01-02 15:04:05.999999999"), loc,
		resume.In(time.FixedZone("", int(before/time.Second))).Format("15:04"), resume.Format("15:04"))
}

// offset is loc's offset from UTC at the instant t.
func offset(t time.Time, loc *time.Location) time.Duration {
	_, off := t.In(loc).Zone()
	return time.Duration(off) * time.Second
}

// DayStart returns the first instant of the local date y-m-d in loc:
// midnight, or where the clocks resume on a day that skips it. Days
// overflow into the next month as time.Date's do.
func DayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	t, _ := LocalInstant(time.Date(y, m, d, 0, 0, 0, 0, time.UTC), loc)
	return t
}

// sameWall reports whether t shows the date and clock of naive (a UTC
// time holding a wall clock).
func sameWall(t, naive time.Time) bool {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, t.Nanosecond(), time.UTC).Equal(naive)
}

// ParseInstant reads a user-supplied time bound: RFC 3339 with a zone
// ("2014-03-10T10:00:00+11:00", "...Z"), a local date-time without zone, or a
// date ("2014-03-10"). Values without a zone are read in loc (LocalInstant),
// so a date means midnight on that day at the exchange.
func ParseInstant(s string, loc *time.Location) (Timestamp, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return TimestampOf(t), nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", time.DateOnly} {
		if wall, err := time.Parse(layout, s); err == nil {
			if layout == time.DateOnly {
				return TimestampOf(DayStart(wall.Year(), wall.Month(), wall.Day(), loc)), nil
			}
			t, err := LocalInstant(wall, loc)
			if err != nil {
				return 0, fmt.Errorf("time %q: %w", s, err)
			}
			return TimestampOf(t), nil
		}
	}
	return 0, fmt.Errorf("time %q is not RFC 3339 (2014-03-10T10:00:00Z), a local date-time (2014-03-10T10:00:00) or a date (2014-03-10)", s)
}

// NullInt64 is an int64 that may be absent (Avro ["null","long"]).
type NullInt64 struct {
	Int64 int64
	Valid bool
}

// SomeInt64 returns a present NullInt64.
func SomeInt64(v int64) NullInt64 { return NullInt64{Int64: v, Valid: true} }

// MarshalJSON writes null when absent.
func (n NullInt64) MarshalJSON() ([]byte, error) {
	if !n.Valid {
		return []byte("null"), nil
	}
	return []byte(fmt.Sprint(n.Int64)), nil
}

// NullTimestamp is a Timestamp that may be absent.
type NullTimestamp struct {
	Timestamp Timestamp
	Valid     bool
}

// MarshalJSON writes null when absent.
func (n NullTimestamp) MarshalJSON() ([]byte, error) {
	if !n.Valid {
		return []byte("null"), nil
	}
	return n.Timestamp.MarshalJSON()
}
