package asx

import (
	"strings"
	"testing"
	"time"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// Any text given to the trade and quote parsers, line by line, gives an
// error or a record that says what the line says: its instant shows the
// line's date and clock in Sydney, its decimals are the line's exactly, and
// its id carries the line's date. Nothing panics.
func FuzzParseLines(f *testing.F) {
	for _, seed := range []string{
		"03/10/2014,07:57:14.754,36.667,20000,3,X,\r",
		"03/10/2014,05:43:45.676,37.7,0.0,300,0",
		"03/10/2014,05:43:45.676,37.7,37.73,300,600\n03/11/2014,10:00:00.000,36.5,100,0,,35.77",
		"10/05/2014,02:30:00.000,36.5,100,0",
		"04/06/2014,02:30:00.000,36.5,100,0",
		"12/31/2014,23:59:59.999999999,1e3,1,0,X,Y",
		"bad,10:00:00.000,1,1,1\n03/10/2014,09:00:00.000,1,1,1",
		",,,,,,", "03/10/2014", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tp, qp := NewTradeParser(bhp, ingested), NewQuoteParser(bhp, ingested)
		for _, line := range strings.Split(text, "\n") {
			if tr, err := tp.Parse(line); err == nil {
				saysWhatTheLineSays(t, line, tr.Timestamp, tr.TradeID)
				fields := strings.Split(strings.TrimRight(line, "\r"), ",")
				if tr.Price != marketdata.MustDecimal(strings.TrimSpace(fields[2])) || tr.Quantity != marketdata.MustDecimal(strings.TrimSpace(fields[3])) {
					t.Fatalf("%q: price %s quantity %s", line, tr.Price, tr.Quantity)
				}
			}
			if q, err := qp.Parse(line); err == nil {
				saysWhatTheLineSays(t, line, q.Timestamp, q.QuoteID)
			}
		}
	})
}

func saysWhatTheLineSays(t *testing.T, line string, ts marketdata.Timestamp, id string) {
	t.Helper()
	fields := strings.Split(strings.TrimRight(line, "\r"), ",")
	// The clock as written, to the second ("9:05:00" is 09:05:00).
	clock, err := time.Parse("15:04:05", fields[1])
	if err != nil {
		t.Fatalf("%q: parsed, but its time does not: %v", line, err)
	}
	local := ts.Time().In(sydney)
	if got, want := local.Format("01/02/2006 15:04:05"), fields[0]+" "+clock.Format("15:04:05"); got != want {
		t.Fatalf("%q: stored as %s, %s in Sydney, not %s", line, ts, got, want)
	}
	if want := "-" + local.Format("20060102") + "-"; !strings.Contains(id, want) {
		t.Fatalf("%q: id %s lacks its date %s", line, id, want)
	}
}
