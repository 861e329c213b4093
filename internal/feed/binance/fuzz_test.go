package binance

import (
	"strconv"
	"strings"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// Any frame gives an error or valid records; nothing panics.
func FuzzParseFrame(f *testing.F) {
	for _, seed := range []string{
		`{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.62000000","q":"0.00020000","T":1723161255342,"m":true,"M":true}}`,
		`{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}`,
		`{"stream":"ethusdt@trade","data":{"e":"trade","E":1721347200101,"T":1721347200100,"s":"ETHUSDT","t":4217898224,"p":"3437.50","q":"0.010","X":"MARKET","m":false}}`,
		`{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1","i":"1","P":"1","r":"0.0001","T":2}}`,
		`{"result":null,"id":1}`, `{"code":-1121,"msg":"Invalid symbol."}`, `{}`, `[]`, `{"stream":"x@trade","data":null}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		ev, err := ParseFrame(frame, 1723161256000000, assets)
		if err != nil {
			return
		}
		for _, tr := range ev.Trades {
			if err := tr.Validate(); err != nil {
				t.Fatalf("%s: invalid trade %+v: %v", frame, tr, err)
			}
		}
		for _, q := range ev.Quotes {
			if err := q.Validate(); err != nil {
				t.Fatalf("%s: invalid quote %+v: %v", frame, q, err)
			}
		}
	})
}

// A public-data row that parses is stored as written: its id, its price
// and size exactly, its side. Nothing panics.
func FuzzParseVisionLine(f *testing.F) {
	for _, seed := range []string{
		"3735683259,61837.62000000,0.00020000,12.36752400,1723161255342,True,True",
		"7,1.5,2,3,1735689600123456,false,False\r",
		"7,1.5,2,3,1723161255342,maybe,True", "-1,1,1,1,1,True,True", ",,,,,,", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		tr, err := ParseVisionLine(line, "BTCUSDT", assets, 0)
		if err != nil {
			return
		}
		fields := strings.Split(strings.TrimRight(line, "\r\n"), ",")
		id, _ := strconv.ParseInt(fields[0], 10, 64)
		if tr.TradeID != "BINANCE-"+strconv.FormatInt(id, 10) || tr.Price != marketdata.MustDecimal(fields[1]) ||
			tr.Quantity != marketdata.MustDecimal(fields[2]) {
			t.Fatalf("%q: stored as %s, %s × %s", line, tr.TradeID, tr.Price, tr.Quantity)
		}
		if maker := strings.EqualFold(fields[5], "true"); tr.Side != side(maker) {
			t.Fatalf("%q: side %s", line, tr.Side)
		}
	})
}
