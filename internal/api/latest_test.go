package api

import (
	"fmt"
	"testing"

	"github.com/k2-market-data/k2/internal/record"
)

// The latest records' memory stays within its bytes even when each entry
// is empty (symbols nobody trades, asked for one after another), and the
// entries read longest ago are the ones that go.
func TestLatestStaysWithinItsBytes(t *testing.T) {
	l := &latest{maxBytes: 4 << 10, series: map[latestKey]*latestSeries{}}
	sc := columnsOf(record.Trade).schema
	for i := range 100 {
		key := latestKey{"trades", fmt.Sprintf("NOSUCH%03d", i), ""}
		ser := l.get(key)
		ser.rows = concat(sc, nil)
		ser.used.Store(int64(i))
		l.account(key, ser)
		if l.bytes > l.maxBytes {
			t.Fatalf("after %d entries: %d bytes held, at most %d", i+1, l.bytes, l.maxBytes)
		}
	}
	if n := len(l.series); n == 0 || n > 8 {
		t.Errorf("%d entries kept in 4 KiB", n)
	}
	for key := range l.series {
		if key.symbol < "NOSUCH090" {
			t.Errorf("%s kept while newer ones went", key.symbol)
		}
	}
}
