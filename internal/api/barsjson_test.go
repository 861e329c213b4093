package api

import (
	"bytes"
	"encoding/json"
	"math/big"
	"testing"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Bars appended by hand are the bytes encoding/json writes, and for a
// symbol encoding/json would escape further (HTML characters), the same
// values.
func TestBarListIsEncodingJSONs(t *testing.T) {
	huge, _ := new(big.Int).SetString("123456789012345678901234567890", 10)
	bar := md.Bar{Symbol: "BHP", Exchange: "ASX", Interval: md.Interval1m,
		WindowStart: md.Timestamp(1723161240000000), WindowEnd: md.Timestamp(1723161300000000),
		Open: md.MustDecimal("45.12"), High: md.MustDecimal("45.2"), Low: md.DecimalFromUnits(1), Close: md.MustDecimal("45"),
		Volume: md.WideDecimal{Units: huge}, TradeCount: 17, VWAP: md.MustDecimal("45.13333333")}
	partial := bar
	partial.Partial, partial.Volume = true, md.WideDecimal{}
	for _, bars := range [][]md.Bar{nil, {bar}, {bar, partial}} {
		want, _ := json.Marshal(bars)
		if bars == nil {
			want = []byte("[]") // writeData answers an empty list as []
		}
		if got := barList(bars).appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("%d bars:\n got %s\nwant %s", len(bars), got, want)
		}
	}
	odd := bar
	odd.Symbol, odd.Exchange = `A<B>&"C"\é`, "X\x01"
	var got, want any
	json.Unmarshal(barList{odd}.appendJSON(nil), &got)
	b, _ := json.Marshal([]md.Bar{odd})
	json.Unmarshal(b, &want)
	if g, w := must(json.Marshal(got)), must(json.Marshal(want)); !bytes.Equal(g, w) {
		t.Errorf("odd symbol: %s, encoding/json %s", g, w)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
