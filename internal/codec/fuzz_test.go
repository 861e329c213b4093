package codec

import (
	"context"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// FuzzDecodeTrade feeds arbitrary messages to a Decoder that knows K2's
// trade schema (id 101, the fast path), an older one (id 1, hamba's
// resolving path) and K2's quote, reference and funding schemas (102–104, which
// a trade cannot be read as). Nothing may panic, every failure must carry a reason
// code, and whatever decodes must survive a round trip through AppendTrade.
func FuzzDecodeTrade(f *testing.F) {
	for _, tr := range tradeCases() {
		msg := must(AppendTrade(nil, idTrade, &tr))
		f.Add(msg)
		f.Add(msg[:len(msg)/2])
	}
	tr := fullTrade()
	seq := int32(3)
	body, err := avro.Marshal(avro.MustParse(tradeV1ish), tradeV1Record{
		MessageID: tr.MessageID.String(), AssetClass: "crypto", Timestamp: hTime(tr.Timestamp),
		Price: tr.Price.Rat(), Quantity: tr.Quantity.Rat(), Side: "SELL", TradeConditions: []string{"a"}, SourceSequence: &seq,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(AppendHeader(nil, 1), body...))
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 0, 101, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	d, _ := newTestDecoder(map[uint32]string{1: tradeV1ish})
	ctx := context.Background()
	var a Arena // the sink's way: text shared with the records before
	f.Fuzz(func(t *testing.T, msg []byte) {
		var got marketdata.Trade
		id, err := d.TradeInto(ctx, msg, &got, &a)
		if err != nil {
			switch marketdata.ReasonOf(err) {
			case marketdata.ReasonNotWireFormat, marketdata.ReasonUnknownSchemaID, marketdata.ReasonUndecodable:
			case marketdata.ReasonIncompatibleSchema:
				if id != idQuote && id != idReference && id != idFunding { // the registry's other records
					t.Fatalf("schema %d reported incompatible: %v", id, err)
				}
			default:
				t.Fatalf("error without a codec reason: %v", err)
			}
			return
		}
		again, _, err := d.Trade(ctx, must(AppendTrade(nil, idTrade, &got)))
		if err != nil {
			t.Fatalf("re-encoded trade does not decode: %v", err)
		}
		equal(t, "round trip", again, got)
	})
}
