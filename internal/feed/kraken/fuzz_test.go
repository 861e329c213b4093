package kraken

import (
	"encoding/json"
	"testing"
)

// Any message gives an error or valid records, one for each element of a
// trade or ticker message's data; nothing panics.
func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		`{"channel":"trade","type":"update","data":[{"symbol":"BTC/USDT","side":"buy","price":105433.6,"qty":0.00027625,"ord_type":"limit","trade_id":10218208,"timestamp":"2025-11-10T17:23:53.971744Z"}]}`,
		`{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":105433.5,"bid_qty":1.2,"ask":105433.6,"ask_qty":0.5,"last":105433.6,"volume":1,"vwap":1,"low":1,"high":1,"change":0,"change_pct":0}]}`,
		`{"channel":"heartbeat"}`, `{"method":"subscribe","success":false,"error":"Currency pair not supported"}`,
		`{"channel":"trade","type":"update","data":[{"price":"1e400"}]}`, `{"channel":"trade","type":"update","data":{}}`, `{}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		ev, err := ParseMessage(msg, received, assets)
		if err != nil {
			return
		}
		for _, tr := range ev.Trades {
			if err := tr.Validate(); err != nil {
				t.Fatalf("%s: invalid trade %+v: %v", msg, tr, err)
			}
		}
		for _, q := range ev.Quotes {
			if err := q.Validate(); err != nil {
				t.Fatalf("%s: invalid quote %+v: %v", msg, q, err)
			}
		}
		if ev.Len() > 0 {
			var m struct{ Data []json.RawMessage }
			if err := json.Unmarshal(msg, &m); err != nil || len(m.Data) != ev.Len() {
				t.Fatalf("%s: %d records from %d elements (%v)", msg, ev.Len(), len(m.Data), err)
			}
		}
	})
}
