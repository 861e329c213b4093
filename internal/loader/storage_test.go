package loader_test

import (
	"context"
	"os"
	"testing"

	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/loader"
	"github.com/k2-market-data/k2/internal/testutil"
)

// A bulk load keeps trades in under an eighth of the bytes of the CSV they
// came from: no derivable column is stored, and each column has the
// encoding that suits it. The figures per column are in docs/lake.md.
func TestTradesTakeUnderAnEighthOfTheirCSV(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		format string
		csv    string
		load   string
		rows   int64
	}{
		{"asx", testutil.Data(t, "asx", "trades", "7078.csv"), copyASX(t, "trades/7078.csv"), 91_631},
		{"binance-csv", testutil.Data(t, "binance", "vision", "BTCUSDT-trades-2024-08-08T2354_2024-08-09T0005.from-ws.csv"), "", 19_904},
	} {
		t.Run(c.format, func(t *testing.T) {
			l := laketest.Open(t)
			src := c.load
			if src == "" {
				src = c.csv
			}
			mustLoad(t, l, loader.Options{}, c.format, src)
			st, err := l.Status(context.Background(), "trades", 0)
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(c.csv)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d trades: %d bytes of Parquet (%.2f a row), %d of CSV: 1/%.1f", st.Rows, st.DataBytes, st.BytesPerRow(), fi.Size(), float64(fi.Size())/float64(st.DataBytes))
			if st.Rows != c.rows || st.DataBytes*8 > fi.Size() {
				t.Fatalf("%d rows in %d bytes; want %d rows in at most %d (1/8 of the CSV)", st.Rows, st.DataBytes, c.rows, fi.Size()/8)
			}
		})
	}
}
