package api

import (
	"fmt"
	"testing"

	"github.com/k2-market-data/k2/internal/lake"
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

// Memory is carried to a newer snapshot only when the tail has read up to
// every offset that snapshot records: a tail behind the sink leaves it at
// the older one.
func TestReached(t *testing.T) {
	offsets := func(pairs ...int64) lake.Offsets {
		o := lake.Offsets{}
		for i := 0; i < len(pairs); i += 2 {
			o.Set("market.crypto.trades.binance", int32(pairs[i]), pairs[i+1])
		}
		return o
	}
	for _, tc := range []struct {
		to, off lake.Offsets
		want    bool
	}{
		{offsets(0, 10, 1, 5), offsets(0, 10, 1, 5), true},
		{offsets(0, 11, 1, 9), offsets(0, 10, 1, 5), true},
		{offsets(0, 9, 1, 9), offsets(0, 10, 1, 5), false},
		{offsets(0, 10), offsets(0, 10, 1, 5), false}, // a partition the tail has not read
		{offsets(0, 10), lake.Offsets{}, true},
	} {
		if got := reached(tc.to, tc.off); got != tc.want {
			t.Errorf("reached(%v, %v) = %v", tc.to, tc.off, got)
		}
	}
}
