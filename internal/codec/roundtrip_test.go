package codec

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
)

func TestTradeRoundTrip(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	for name, tr := range tradeCases() {
		t.Run(name, func(t *testing.T) {
			msg := must(AppendTrade(nil, idTrade, &tr))
			got, id, err := d.Trade(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			if id != idTrade {
				t.Errorf("id %d", id)
			}
			equal(t, "trade", got, normTrade(tr))
		})
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	for name, q := range quoteCases() {
		t.Run(name, func(t *testing.T) {
			msg := must(AppendQuote(nil, idQuote, &q))
			got, id, err := d.Quote(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			if id != idQuote {
				t.Errorf("id %d", id)
			}
			equal(t, "quote", got, q)
		})
	}
}

func TestReferenceRoundTrip(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	for name, r := range referenceCases() {
		t.Run(name, func(t *testing.T) {
			msg := must(AppendReference(nil, idReference, &r))
			got, id, err := d.Reference(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			if id != idReference {
				t.Errorf("id %d", id)
			}
			equal(t, "reference", got, r)
		})
	}
}

func TestFundingRoundTrip(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	for name, f := range fundingCases() {
		t.Run(name, func(t *testing.T) {
			msg := must(AppendFunding(nil, idFunding, &f))
			got, id, err := d.Funding(context.Background(), msg)
			if err != nil {
				t.Fatal(err)
			}
			if id != idFunding {
				t.Errorf("id %d", id)
			}
			equal(t, "funding", got, f)
		})
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	tr := fullTrade()
	for _, id := range []uint32{0, 1, 255, 256, 1<<24 + 5, 1<<32 - 1} {
		msg := must(AppendTrade(nil, id, &tr))
		if msg[0] != 0 || binary.BigEndian.Uint32(msg[1:5]) != id {
			t.Errorf("header % x for id %d", msg[:5], id)
		}
		gotID, body, err := SplitMessage(msg)
		if err != nil || gotID != id || !bytes.Equal(body, msg[5:]) {
			t.Errorf("SplitMessage: %d %v", gotID, err)
		}
	}
}

// Append* must append, leaving what the buffer held alone.
func TestAppendKeepsPrefix(t *testing.T) {
	t.Parallel()
	tr, q, r := fullTrade(), fullQuote(), fullReference()
	prefix := []byte("prefix")
	for name, msg := range map[string][]byte{
		"trade":     must(AppendTrade(append([]byte{}, prefix...), 7, &tr)),
		"quote":     must(AppendQuote(append([]byte{}, prefix...), 7, &q)),
		"reference": must(AppendReference(append([]byte{}, prefix...), 7, &r)),
	} {
		if !bytes.HasPrefix(msg, prefix) || msg[len(prefix)] != 0 {
			t.Errorf("%s: % x", name, msg[:12])
		}
	}
}

// Go's map order is random; the encoding must not be.
func TestVendorDataDeterministic(t *testing.T) {
	t.Parallel()
	tr := tradeCases()["many conditions and vendor keys"]
	first := must(AppendTrade(nil, 1, &tr))
	for range 20 {
		if !bytes.Equal(first, must(AppendTrade(nil, 1, &tr))) {
			t.Fatal("encoding of the same trade changed")
		}
	}
}

// Not parallel: AllocsPerRun counts every goroutine's allocations, and
// serial tests finish before parallel ones start.
func TestAppendTradeDoesNotAllocate(t *testing.T) {
	tr := fullTrade()
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = must(AppendTrade(buf[:0], 1, &tr)) }); n != 0 {
		t.Errorf("%v allocations per trade", n)
	}
	q := fullQuote()
	if n := testing.AllocsPerRun(100, func() { buf = must(AppendQuote(buf[:0], 1, &q)) }); n != 0 {
		t.Errorf("%v allocations per quote", n)
	}
}

// An enum value outside the schema is an error naming the field, never a
// panic or another symbol, and leaves the buffer as it was.
func TestAppendInvalidEnumIsAnError(t *testing.T) {
	t.Parallel()
	prefix := []byte("kept")
	tests := map[string]struct {
		encode func() ([]byte, error)
		reason string
	}{
		"side":        {func() ([]byte, error) { tr := fullTrade(); tr.Side = ""; return AppendTrade(prefix, 1, &tr) }, "invalid_side"},
		"asset class": {func() ([]byte, error) { tr := fullTrade(); tr.AssetClass = "bonds"; return AppendTrade(prefix, 1, &tr) }, "invalid_asset_class"},
		"quote asset": {func() ([]byte, error) { q := fullQuote(); q.AssetClass = ""; return AppendQuote(prefix, 1, &q) }, "invalid_asset_class"},
		"reference": {func() ([]byte, error) {
			r := fullReference()
			r.AssetClass = "CRYPTO"
			return AppendReference(prefix, 1, &r)
		}, "invalid_asset_class"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := tt.encode()
			if err == nil || marketdata.ReasonOf(err) != tt.reason || string(got) != "kept" {
				t.Errorf("got %q, %v (reason %s); want the buffer unchanged and %s", got, err, marketdata.ReasonOf(err), tt.reason)
			}
		})
	}
}

// A hand-checked encoding, so the tests do not only agree with themselves.
func TestTradeGoldenBytes(t *testing.T) {
	t.Parallel()
	tr := marketdata.Trade{
		MessageID:          [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef},
		TradeID:            "B-1",
		Symbol:             "X",
		Exchange:           "B",
		AssetClass:         marketdata.Crypto,
		Timestamp:          -1,
		Price:              128, // 0x0080: needs a sign byte
		Quantity:           -128,
		Currency:           "U",
		Side:               marketdata.SellShort,
		TradeConditions:    []string{"c"},
		SourceSequence:     marketdata.SomeInt64(64),
		IngestionTimestamp: 63,
		VendorData:         map[string]string{"k": "v"},
	}
	want := []byte{0, 0, 0, 1, 2} // magic, id 258
	want = append(want, 72)
	want = append(want, "01234567-89ab-cdef-0123-456789abcdef"...)
	want = append(want, 6, 'B', '-', '1', 2, 'X', 2, 'B')
	want = append(want, 2)          // crypto
	want = append(want, 1)          // timestamp -1
	want = append(want, 4, 0, 0x80) // price 128
	want = append(want, 2, 0x80)    // quantity -128
	want = append(want, 2, 'U')
	want = append(want, 4)                       // SELL_SHORT
	want = append(want, 2, 2, 'c', 0)            // ["c"]
	want = append(want, 2, 0x80, 0x01)           // source_sequence 64
	want = append(want, 0x7e)                    // ingestion 63
	want = append(want, 0)                       // platform_sequence null
	want = append(want, 2, 2, 2, 'k', 2, 'v', 0) // {"k":"v"}
	got := must(AppendTrade(nil, 258, &tr))
	if !bytes.Equal(got, want) {
		t.Errorf("\n got % x\nwant % x", got, want)
	}
}

// Longs round-trip at every length, both when ten bytes are left (the
// unrolled loop) and at the very end of the body (the checked loop).
func TestLongRoundTrip(t *testing.T) {
	t.Parallel()
	values := []int64{0, 1, -1, 63, -64, 64, -65, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64}
	for i := range 63 {
		values = append(values, int64(1)<<i, -(int64(1) << i), int64(1)<<i-1)
	}
	for _, v := range values {
		enc := appendLong(nil, v)
		for _, pad := range []int{0, 10} {
			r := newReader(append(append([]byte{}, enc...), make([]byte, pad)...))
			if got := r.long("v"); got != v || r.err != nil || r.pos != len(enc) {
				t.Errorf("%d (pad %d): got %d at %d, %v", v, pad, got, r.pos, r.err)
			}
		}
	}
}
