package binance

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/k2-market-data/k2/internal/testutil"
)

// agree checks that where the fast scanner accepts data, encoding/json
// reads the same event from it.
func agree(t testing.TB, data []byte) (fast bool) {
	var fastEv, slowEv event
	if !scanEvent(data, &fastEv) {
		return false
	}
	if err := json.Unmarshal(data, &slowEv); err != nil {
		t.Fatalf("the scanner accepted what encoding/json rejects (%v): %s", err, data)
	}
	if !reflect.DeepEqual(normalize(fastEv), normalize(slowEv)) {
		t.Fatalf("scanner and encoding/json differ on %s:\n%+v\n%+v", data, fastEv, slowEv)
	}
	return true
}

// normalize makes empty raw values comparable (nil and [] are both "absent").
func normalize(ev event) event {
	for _, r := range []*json.RawMessage{&ev.Price, &ev.Qty, &ev.FirstID, &ev.Bid, &ev.BidQty, &ev.Ask, &ev.AskQty, &ev.Result, &ev.ID, &ev.Code} {
		if len(*r) == 0 {
			*r = nil
		}
	}
	return ev
}

// Every trade and bookTicker frame of the real captures takes the fast
// path and reads exactly as encoding/json reads it.
func TestScanEventAgreesOnTheCaptures(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz", "spot_ethusdt_20240808.gz"} {
		fast, events := 0, 0
		testutil.ForLines(t, testutil.Data(t, "binance", "ws", name), func(n int, line []byte) {
			_, frame, _ := bytes.Cut(line, []byte{' '})
			stream, data, ok := splitEnvelope(frame)
			if !ok {
				return
			}
			if bytes.HasSuffix(stream, []byte("@trade")) || bytes.HasSuffix(stream, []byte("@bookTicker")) {
				events++
				if !agree(t, data) {
					t.Fatalf("%s:%d: a %s frame missed the fast path: %s", name, n, stream, data)
				}
				fast++
			} else {
				agree(t, data)
			}
		})
		if fast == 0 || fast != events {
			t.Fatalf("%s: %d of %d events on the fast path", name, fast, events)
		}
	}
}

func FuzzScanEventAgreesWithEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		`{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.62000000","q":"0.00020000","T":1723161255342,"m":true,"M":true}`,
		`{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}`,
		`{"result":null,"id":1}`, `{"code":-1121,"msg":"Invalid symbol."}`, `{"S":"x","P":"1","RESULT":2,"m":null,"t":"12"}`,
		`{ "e" : "trade" , "E" : 1e3 , "x" : -0.5 }`, `{}`, `{"e":"tr\u0061de"}`, `{"p":01}`, `{"p":1.}`, `{"m":tru}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) { agree(t, data) })
}
