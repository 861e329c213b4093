package codec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/k2-market-data/k2/internal/marketdata"
)

func TestNotWireFormat(t *testing.T) {
	t.Parallel()
	d, reg := newTestDecoder(nil)
	tr := fullTrade()
	good := must(AppendTrade(nil, idTrade, &tr))
	bad := append([]byte{1}, good[1:]...)
	for name, msg := range map[string][]byte{
		"nil": nil, "empty": {}, "one byte": {0}, "four bytes": {0, 0, 0, 0}, "magic 1": bad, "json": []byte(`{"price":"1"}`),
	} {
		_, _, err := d.Trade(context.Background(), msg)
		if !errors.Is(err, ErrNotWireFormat) || marketdata.ReasonOf(err) != marketdata.ReasonNotWireFormat {
			t.Errorf("%s: %v, reason %q", name, err, marketdata.ReasonOf(err))
		}
	}
	if reg.calls.Load() != 0 {
		t.Error("looked up a schema for a message without a header")
	}
	// The header alone is wire format; the empty body is what is wrong.
	_, _, err := d.Trade(context.Background(), good[:HeaderSize])
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("header only: %v", err)
	}
}

func TestUnknownSchemaID(t *testing.T) {
	t.Parallel()
	d, reg := newTestDecoder(nil)
	tr := fullTrade()
	msg := must(AppendTrade(nil, 4242, &tr))
	for i := 1; i <= 3; i++ {
		_, id, err := d.Trade(context.Background(), msg)
		var unknown *UnknownSchemaError
		if !errors.As(err, &unknown) || unknown.ID != 4242 || id != 4242 {
			t.Fatalf("err %v (%T), id %d", err, err, id)
		}
		if !errors.Is(err, errNotFound) || marketdata.ReasonOf(err) != marketdata.ReasonUnknownSchemaID {
			t.Errorf("err %v, reason %s", err, marketdata.ReasonOf(err))
		}
		if !strings.Contains(err.Error(), "4242") {
			t.Errorf("error %q does not name the id", err)
		}
		// Failed lookups are retried: the registry may have been down.
		if got := reg.calls.Load(); got != int64(i) {
			t.Errorf("%d lookups after %d decodes", got, i)
		}
	}
}

// A cancelled lookup is still an UnknownSchemaError, but the consumer can
// tell it from a missing schema.
func TestLookupContextError(t *testing.T) {
	t.Parallel()
	d := NewDecoder(func(ctx context.Context, _ uint32) (string, error) { return "", ctx.Err() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr := fullTrade()
	_, _, err := d.Trade(ctx, must(AppendTrade(nil, 1, &tr)))
	if !errors.Is(err, context.Canceled) || marketdata.ReasonOf(err) != marketdata.ReasonUnknownSchemaID {
		t.Errorf("err %v, reason %s", err, marketdata.ReasonOf(err))
	}
}

func TestSchemaLookupCached(t *testing.T) {
	t.Parallel()
	d, reg := newTestDecoder(nil)
	tr, q := fullTrade(), fullQuote()
	trade, quote := must(AppendTrade(nil, idTrade, &tr)), must(AppendQuote(nil, idQuote, &q))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if _, _, err := d.Trade(context.Background(), trade); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := d.Quote(context.Background(), quote); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Racing first decodes may each look an id up once; after that, never.
	if n := reg.calls.Load(); n < 2 || n > 16 {
		t.Errorf("%d lookups", n)
	}
	before := reg.calls.Load()
	for range 100 {
		d.Trade(context.Background(), trade)
	}
	if reg.calls.Load() != before {
		t.Error("a cached id was looked up again")
	}
}

// mutate returns a copy of msg with bytes [at, at+len(old)) checked and replaced.
func mutate(t *testing.T, msg []byte, old, new []byte) []byte {
	t.Helper()
	i := bytes.Index(msg, old)
	if i < 0 {
		t.Fatalf("% x not in message", old)
	}
	out := append([]byte{}, msg[:i]...)
	out = append(out, new...)
	return append(out, msg[i+len(old):]...)
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	ctx := context.Background()
	tr := minimalTrade() // ends ... source_sequence null, ingestion ts, platform null, vendor null
	tr.TradeID = "BINANCE-1"
	good := must(AppendTrade(nil, idTrade, &tr))
	id := AppendHeader(nil, idTrade)
	tail := func(b []byte) []byte { return append(append([]byte{}, good[:len(good)-1]...), b...) }
	tests := []struct {
		name  string
		msg   []byte
		field string
	}{
		{"trailing byte", append(append([]byte{}, good...), 0), "(end)"},
		{"vendor union index 2", tail([]byte{4}), "vendor_data"},
		{"vendor union index -1", tail([]byte{1}), "vendor_data"},
		{"vendor map truncated", tail([]byte{2, 2, 2, 'k'}), "vendor_data"},
		{"vendor map huge count", tail([]byte{2, 0xfe, 0xff, 0xff, 0xff, 0x0f}), "vendor_data"},
		{"vendor map count MinInt64", tail([]byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}), "vendor_data"},
		{"varint of 11 bytes", append(id, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "message_id"},
		{"varint 10th byte too big", append(id, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02), "message_id"},
		{"negative string length", append(id, 0x01), "message_id"},
		{"string longer than message", append(id, 0x7e, 'a'), "message_id"},
		{"message_id not a UUID", append(append(id, 72), strings.Repeat("z", 36)...), "message_id"},
		{"trade_id length past end", mutate(t, good, []byte("\x12BINANCE-1"), []byte("\x7eBINANCE-1")), "trade_id"},
		{"asset class index 4", mutate(t, good, []byte("BINANCE\x02"), []byte("BINANCE\x08")), "asset_class"},
		{"asset class index -1", mutate(t, good, []byte("BINANCE\x02"), []byte("BINANCE\x01")), "asset_class"},
		{"side index 4", mutate(t, good, []byte("USDT\x02"), []byte("USDT\x08")), "side"},
		{"price 9 bytes beyond int64", mutate(t, good, appendDecimal(nil, tr.Price), []byte{0x12, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}), "price"},
		{"conditions count past end", mutate(t, good, []byte("USDT\x02\x00"), []byte("USDT\x02\x40")), "trade_conditions"},
		{"conditions negative count, size truncated", mutate(t, good, []byte("USDT\x02\x00"), []byte("USDT\x02\x01\xff")), "trade_conditions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := d.Trade(ctx, tt.msg)
			if !errors.Is(err, ErrMalformed) || marketdata.ReasonOf(err) != marketdata.ReasonUndecodable {
				t.Fatalf("err %v, reason %q", err, marketdata.ReasonOf(err))
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestMalformedReference(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	r := fullReference()
	r.VendorData = nil
	good := must(AppendReference(nil, idReference, &r))
	// is_active sits before the ingestion timestamp and the vendor null.
	at := len(good) - 1 - len(appendLong(nil, int64(r.IngestionTimestamp))) - 1
	if good[at] != 1 {
		t.Fatalf("byte %d is %d, not is_active", at, good[at])
	}
	bad := append([]byte{}, good...)
	bad[at] = 2
	_, _, err := d.Reference(context.Background(), bad)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "is_active") {
		t.Errorf("err %v", err)
	}
}

// Every prefix of every message fails cleanly, on both paths.
func TestTruncatedNeverPanics(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(map[uint32]string{1: tradeV1ish, 2: quoteOriginal, 3: referenceOld})
	ctx := context.Background()
	var msgs [][]byte
	for _, tr := range tradeCases() {
		msgs = append(msgs, must(AppendTrade(nil, idTrade, &tr)))
	}
	for _, q := range quoteCases() {
		msgs = append(msgs, must(AppendQuote(nil, idQuote, &q)))
	}
	for _, r := range referenceCases() {
		msgs = append(msgs, must(AppendReference(nil, idReference, &r)))
	}
	q := fullQuote()
	msgs = append(msgs, writeWith(t, 2, quoteOriginal, toHQuote(q)))
	tr := fullTrade()
	seq := int32(1)
	msgs = append(msgs, writeWith(t, 1, tradeV1ish, tradeV1Record{MessageID: tr.MessageID.String(), AssetClass: "crypto",
		Price: tr.Price.Rat(), Quantity: tr.Quantity.Rat(), Side: "BUY", TradeConditions: []string{"a", "b"}, SourceSequence: &seq}))
	for _, full := range msgs {
		decode := map[byte]func([]byte) error{
			idTrade:     func(m []byte) error { _, _, err := d.Trade(ctx, m); return err },
			1:           func(m []byte) error { _, _, err := d.Trade(ctx, m); return err },
			idQuote:     func(m []byte) error { _, _, err := d.Quote(ctx, m); return err },
			2:           func(m []byte) error { _, _, err := d.Quote(ctx, m); return err },
			idReference: func(m []byte) error { _, _, err := d.Reference(ctx, m); return err },
		}[full[4]]
		if err := decode(full); err != nil {
			t.Fatalf("full message: %v", err)
		}
		for n := range len(full) {
			err := decode(full[:n])
			want := ErrMalformed
			if n < HeaderSize {
				want = ErrNotWireFormat
			}
			if !errors.Is(err, want) {
				t.Fatalf("%d of %d bytes: %v", n, len(full), err)
			}
		}
	}
}

// Corrupting any byte never panics; whatever still decodes re-encodes to
// something that decodes the same.
func TestCorruptionNeverPanics(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	ctx := context.Background()
	tr := fullTrade()
	full := must(AppendTrade(nil, idTrade, &tr))
	for i := HeaderSize; i < len(full); i++ {
		for _, v := range []byte{0, 1, 0x7f, 0x80, 0xff, full[i] ^ 0x01} {
			msg := append([]byte{}, full...)
			msg[i] = v
			got, _, err := d.Trade(ctx, msg)
			if err != nil {
				if marketdata.ReasonOf(err) != marketdata.ReasonUndecodable {
					t.Fatalf("byte %d = %#x: %v", i, v, err)
				}
				continue
			}
			again, _, err := d.Trade(ctx, must(AppendTrade(nil, idTrade, &got)))
			if err != nil {
				t.Fatalf("byte %d = %#x: re-encoded: %v", i, v, err)
			}
			equal(t, fmt.Sprint("byte ", i), again, got)
		}
	}
}

func TestReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{ErrNotWireFormat, marketdata.ReasonNotWireFormat},
		{fmt.Errorf("wrapped: %w", ErrMalformed), marketdata.ReasonUndecodable},
		{&UnknownSchemaError{ID: 1, Err: errNotFound}, marketdata.ReasonUnknownSchemaID},
		{fmt.Errorf("consumer: %w", &UnknownSchemaError{ID: 1, Err: context.DeadlineExceeded}), marketdata.ReasonUnknownSchemaID},
		{&SchemaError{ID: 1, Record: Trade.Name, Err: errors.New("x")}, marketdata.ReasonIncompatibleSchema},
		{&marketdata.ValidationError{Field: "price", Reason: "must be positive"}, "invalid_price"},
		{errors.New("something else"), "parse"},
	}
	for _, tt := range tests {
		if got := marketdata.ReasonOf(tt.err); got != tt.want {
			t.Errorf("Reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// Decoding does not validate; the caller does, and Reason covers both.
func TestDecodeThenValidate(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	tr := fullTrade()
	if err := tr.Validate(); err != nil {
		t.Fatalf("fixture invalid: %v", err)
	}
	tr.Exchange = "NOWHERE"
	got, _, err := d.Trade(context.Background(), must(AppendTrade(nil, idTrade, &tr)))
	if err != nil {
		t.Fatalf("decoding validated: %v", err)
	}
	if r := marketdata.ReasonOf(got.Validate()); r != "invalid_exchange" {
		t.Errorf("reason %q", r)
	}
	q := fullQuote()
	q.BidPrice = marketdata.SomeDecimal(-1)
	gotQ, _, err := d.Quote(context.Background(), must(AppendQuote(nil, idQuote, &q)))
	if err != nil {
		t.Fatal(err)
	}
	if r := marketdata.ReasonOf(gotQ.Validate()); r != "invalid_bid_price" {
		t.Errorf("reason %q", r)
	}
}
