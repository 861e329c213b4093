package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// Writer schemas other than K2's, as older or newer producers registered them.
const (
	// An older trade schema: no platform_sequence or vendor_data, an extra
	// field K2 does not read, fields in another order, source_sequence an
	// int, and a side enum with fewer symbols in another order.
	tradeV1ish = `{"type":"record","name":"TradeV2","namespace":"com.k2.marketdata","fields":[
		{"name":"venue","type":"string"},
		{"name":"message_id","type":"string"},
		{"name":"symbol","type":"string"},
		{"name":"trade_id","type":"string"},
		{"name":"exchange","type":"string"},
		{"name":"asset_class","type":{"type":"enum","name":"AssetClass","symbols":["equities","crypto","futures","options"]}},
		{"name":"ingestion_timestamp","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":8}},
		{"name":"quantity","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":8}},
		{"name":"currency","type":"string"},
		{"name":"side","type":{"type":"enum","name":"TradeSide","symbols":["UNKNOWN","SELL","BUY"]}},
		{"name":"trade_conditions","type":{"type":"array","items":"string"}},
		{"name":"source_sequence","type":["null","int"],"default":null}
	]}`

	// The original platform's QuoteV2: the four book values required.
	quoteOriginal = `{"type":"record","name":"QuoteV2","namespace":"com.k2.marketdata","fields":[
		{"name":"message_id","type":"string"},
		{"name":"quote_id","type":"string"},
		{"name":"symbol","type":"string"},
		{"name":"exchange","type":"string"},
		{"name":"asset_class","type":{"type":"enum","name":"AssetClass","symbols":["equities","crypto","futures","options"]}},
		{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"bid_price","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":8}},
		{"name":"bid_quantity","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":8}},
		{"name":"ask_price","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":8}},
		{"name":"ask_quantity","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":8}},
		{"name":"currency","type":"string"},
		{"name":"source_sequence","type":["null","long"],"default":null},
		{"name":"ingestion_timestamp","type":{"type":"long","logicalType":"timestamp-micros"}},
		{"name":"platform_sequence","type":["null","long"],"default":null},
		{"name":"vendor_data","type":["null",{"type":"map","values":"string"}],"default":null}
	]}`

	// Reference data without is_active and vendor_data, isin not nullable.
	referenceOld = `{"type":"record","name":"ReferenceDataV2","namespace":"com.k2.marketdata","fields":[
		{"name":"message_id","type":"string"},
		{"name":"company_id","type":"string"},
		{"name":"symbol","type":"string"},
		{"name":"exchange","type":"string"},
		{"name":"asset_class","type":{"type":"enum","name":"AssetClass","symbols":["equities","crypto","futures","options"]}},
		{"name":"company_name","type":"string"},
		{"name":"isin","type":"string"},
		{"name":"ingestion_timestamp","type":{"type":"long","logicalType":"timestamp-micros"}}
	]}`
)

type tradeV1Record struct {
	Venue              string    `avro:"venue"`
	MessageID          string    `avro:"message_id"`
	Symbol             string    `avro:"symbol"`
	TradeID            string    `avro:"trade_id"`
	Exchange           string    `avro:"exchange"`
	AssetClass         string    `avro:"asset_class"`
	IngestionTimestamp int64     `avro:"ingestion_timestamp"`
	Timestamp          time.Time `avro:"timestamp"`
	Price              *big.Rat  `avro:"price"`
	Quantity           *big.Rat  `avro:"quantity"`
	Currency           string    `avro:"currency"`
	Side               string    `avro:"side"`
	TradeConditions    []string  `avro:"trade_conditions"`
	SourceSequence     *int32    `avro:"source_sequence"`
}

type referenceOldRecord struct {
	MessageID          string `avro:"message_id"`
	CompanyID          string `avro:"company_id"`
	Symbol             string `avro:"symbol"`
	Exchange           string `avro:"exchange"`
	AssetClass         string `avro:"asset_class"`
	CompanyName        string `avro:"company_name"`
	ISIN               string `avro:"isin"`
	IngestionTimestamp int64  `avro:"ingestion_timestamp"`
}

// writeWith encodes v with a writer schema text into a wire-format message.
func writeWith(t *testing.T, id uint32, schema string, v any) []byte {
	t.Helper()
	body, err := avro.Marshal(avro.MustParse(schema), v)
	if err != nil {
		t.Fatal(err)
	}
	return append(AppendHeader(nil, id), body...)
}

func TestEvolutionOlderTradeSchema(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(map[uint32]string{1: tradeV1ish})
	want := minimalTrade()
	want.Side = marketdata.Buy
	want.TradeConditions = []string{"X"}
	want.SourceSequence = marketdata.SomeInt64(-7)
	seq := int32(-7)
	msg := writeWith(t, 1, tradeV1ish, tradeV1Record{
		Venue: "ignored", MessageID: want.MessageID.String(), Symbol: want.Symbol, TradeID: want.TradeID,
		Exchange: want.Exchange, AssetClass: string(want.AssetClass), IngestionTimestamp: int64(want.IngestionTimestamp),
		Timestamp: hTime(want.Timestamp), Price: want.Price.Rat(), Quantity: want.Quantity.Rat(), Currency: want.Currency,
		Side: string(want.Side), TradeConditions: want.TradeConditions, SourceSequence: &seq,
	})
	got, id, err := d.Trade(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if id != 1 {
		t.Errorf("id %d", id)
	}
	// platform_sequence and vendor_data take their defaults: null.
	equal(t, "trade", got, want)
	if p := d.planFor(t, 1, &Trade); p.fast {
		t.Error("an older schema took the fast path")
	}

	// A null source_sequence and no conditions.
	msg = writeWith(t, 1, tradeV1ish, tradeV1Record{
		MessageID: want.MessageID.String(), AssetClass: "futures", Timestamp: time.UnixMicro(5), Price: big.NewRat(1, 1), Quantity: big.NewRat(1, 100000000), Side: "UNKNOWN",
	})
	got, _, err = d.Trade(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "trade", got, marketdata.Trade{
		MessageID: want.MessageID, AssetClass: marketdata.Futures, Timestamp: 5, Price: 100000000, Quantity: 1,
		Side: marketdata.Unknown, TradeConditions: []string{},
	})
}

func TestEvolutionOriginalQuoteSchema(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(map[uint32]string{2: quoteOriginal})
	want := fullQuote()
	msg := writeWith(t, 2, quoteOriginal, toHQuote(want))
	got, _, err := d.Quote(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "quote", got, want)
}

func TestEvolutionOlderReferenceSchema(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(map[uint32]string{3: referenceOld})
	ref := fullReference()
	msg := writeWith(t, 3, referenceOld, referenceOldRecord{
		MessageID: ref.MessageID.String(), CompanyID: ref.CompanyID, Symbol: ref.Symbol, Exchange: ref.Exchange,
		AssetClass: string(ref.AssetClass), CompanyName: ref.CompanyName, ISIN: ref.ISIN, IngestionTimestamp: int64(ref.IngestionTimestamp),
	})
	got, _, err := d.Reference(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	want := ref
	want.Currency, want.ListingDate, want.DelistingDate, want.VendorData = "", marketdata.NullTimestamp{}, marketdata.NullTimestamp{}, nil
	want.IsActive = true // the schema default
	equal(t, "reference", got, want)
}

// A newer producer adding an optional field still reads (the extra field
// is skipped), as does a writer with a wider decimal precision.
func TestEvolutionNewerTradeSchema(t *testing.T) {
	t.Parallel()
	newer := strings.Replace(Trade.Text, `"fields": [`, `"fields": [
    {"name": "venue", "type": ["null", "string"], "default": null},`, 1)
	newer = strings.Replace(newer, `"precision": 18`, `"precision": 38`, 1) // price only
	if newer == Trade.Text {
		t.Fatal("schema edit did not apply")
	}
	d, _ := newTestDecoder(map[uint32]string{4: newer})
	for name, tr := range tradeCases() {
		if hambaDiffers(tr.Price, tr.Quantity) {
			continue
		}
		venue := "XNAS"
		body, err := avro.Marshal(avro.MustParse(newer), flattenNewer(&venue, toHTrade(tr)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, _, err := d.Trade(context.Background(), append(AppendHeader(nil, 4), body...))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		equal(t, name, got, normTrade(tr))
	}
	if p := d.planFor(t, 4, &Trade); p.fast || p.err != nil {
		t.Errorf("plan %+v", p)
	}
}

// flattenNewer builds the generic record for the newer schema: hamba does
// not flatten embedded structs.
func flattenNewer(venue *string, a avroTrade) map[string]any {
	m := map[string]any{
		"venue": nil, "message_id": a.MessageID, "trade_id": a.TradeID, "symbol": a.Symbol, "exchange": a.Exchange,
		"asset_class": a.AssetClass, "timestamp": a.Timestamp, "price": a.Price, "quantity": a.Quantity,
		"currency": a.Currency, "side": a.Side, "trade_conditions": a.TradeConditions,
		"ingestion_timestamp": a.IngestionTimestamp,
	}
	if venue != nil {
		m["venue"] = *venue
	}
	if a.SourceSequence != nil {
		m["source_sequence"] = *a.SourceSequence
	} else {
		m["source_sequence"] = nil
	}
	if a.PlatformSequence != nil {
		m["platform_sequence"] = *a.PlatformSequence
	} else {
		m["platform_sequence"] = nil
	}
	if a.VendorData != nil {
		vm := map[string]any{}
		for k, v := range *a.VendorData {
			vm[k] = v
		}
		m["vendor_data"] = map[string]any{"map": vm}
	} else {
		m["vendor_data"] = nil
	}
	return m
}

// A writer schema that differs from K2's only in docs and layout is the
// same schema: the fast path.
func TestEquivalentSchemaTakesFastPath(t *testing.T) {
	t.Parallel()
	var v map[string]any
	if err := json.Unmarshal([]byte(Trade.Text), &v); err != nil {
		t.Fatal(err)
	}
	delete(v, "doc")
	for _, f := range v["fields"].([]any) {
		delete(f.(map[string]any), "doc")
	}
	compact, _ := json.Marshal(v)
	d, _ := newTestDecoder(map[uint32]string{5: string(compact)})
	tr := fullTrade()
	got, _, err := d.Trade(context.Background(), must(AppendTrade(nil, 5, &tr)))
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "trade", got, tr)
	if p := d.planFor(t, 5, &Trade); !p.fast {
		t.Error("the same schema without docs did not take the fast path")
	}
}

// planFor returns the cached plan of a schema id, after a decode used it.
func (d *Decoder) planFor(t *testing.T, id uint32, reader *Schema) *plan {
	t.Helper()
	w, ok := (*d.schemas.Load())[id]
	if !ok {
		t.Fatalf("schema %d not cached", id)
	}
	p := w.plans[reader.index].Load()
	if p == nil {
		t.Fatalf("no plan for schema %d", id)
	}
	return p
}

func TestIncompatibleWriterSchemas(t *testing.T) {
	t.Parallel()
	edit := func(old, new string) string {
		s := strings.Replace(Trade.Text, old, new, 1)
		if s == Trade.Text {
			t.Fatalf("edit %q did not apply", old)
		}
		return s
	}
	tests := []struct {
		name, schema, wantMsg string
	}{
		{"required field missing",
			edit(`{"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 8}, "doc": "Execution price in the quote currency, exact to 8 decimals."},`, ""),
			"price is missing"},
		{"decimal scale 6",
			edit(`"precision": 18, "scale": 8}, "doc": "Execution price`, `"precision": 18, "scale": 6}, "doc": "Execution price`),
			"price"},
		{"timestamp in millis",
			edit(`{"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}`, `{"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}`),
			"timestamp"},
		{"timestamp without logical type",
			edit(`{"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-micros"}`, `{"name": "timestamp", "type": "long"`),
			"timestamp"},
		{"price as a string",
			edit(`{"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 8}`, `{"name": "price", "type": "string"`),
			"price"},
		{"nullable price",
			edit(`{"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 8}`, `{"name": "price", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 8}]`),
			"null"},
		{"side with a symbol K2 lacks",
			edit(`"UNKNOWN"]`, `"UNKNOWN", "CROSS"]`),
			"CROSS"},
		{"another record", strings.Replace(Trade.Text, `"name": "TradeV2"`, `"name": "Trade"`, 1), "names do not match"},
		{"a quote", Quote.Text, "names do not match"},
		{"not JSON", `{"type": "record", "name": `, "parse"},
		{"not a record", `"string"`, "string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, reg := newTestDecoder(map[uint32]string{9: tt.schema})
			tr := fullTrade()
			msg := must(AppendTrade(nil, 9, &tr))
			for range 2 {
				_, id, err := d.Trade(context.Background(), msg)
				var se *SchemaError
				if !errors.As(err, &se) || se.ID != 9 || se.Record != Trade.Name || id != 9 {
					t.Fatalf("err %v (%T), id %d", err, err, id)
				}
				if !errors.Is(err, ErrIncompatibleSchema) || marketdata.ReasonOf(err) != marketdata.ReasonIncompatibleSchema {
					t.Errorf("err %v: reason %s", err, marketdata.ReasonOf(err))
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("error %q does not mention %q", err, tt.wantMsg)
				}
			}
			if reg.calls.Load() != 1 {
				t.Errorf("%d lookups: an incompatible schema should be cached", reg.calls.Load())
			}
		})
	}
}

// A writer with decimal(38,8) is compatible, but a value beyond 64 bits
// cannot be a K2 decimal.
func TestWideDecimalOverflow(t *testing.T) {
	t.Parallel()
	wide := strings.ReplaceAll(Trade.Text, `"precision": 18`, `"precision": 38`)
	d, _ := newTestDecoder(map[uint32]string{6: wide})
	a := toHTrade(fullTrade())
	a.Price = new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(20), nil))
	body, err := avro.Marshal(avro.MustParse(wide), a)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = d.Trade(context.Background(), append(AppendHeader(nil, 6), body...))
	if !errors.Is(err, ErrMalformed) || marketdata.ReasonOf(err) != marketdata.ReasonUndecodable {
		t.Fatalf("err %v", err)
	}
	// Within range it reads.
	a.Price = big.NewRat(3, 2)
	body, _ = avro.Marshal(avro.MustParse(wide), a)
	got, _, err := d.Trade(context.Background(), append(AppendHeader(nil, 6), body...))
	if err != nil || got.Price != marketdata.MustDecimal("1.5") {
		t.Fatalf("%v %v", got.Price, err)
	}
}

// vendor_data arrives bare from a writer whose map is not nullable and
// wrapped in hamba's {"map": …} from a nullable one; a vendor key that is
// itself "map" must survive both.
func TestEvolutionVendorDataShapes(t *testing.T) {
	t.Parallel()
	plainMap := strings.Replace(quoteOriginal,
		`{"name":"vendor_data","type":["null",{"type":"map","values":"string"}],"default":null}`,
		`{"name":"vendor_data","type":{"type":"map","values":"string"}}`, 1)
	if plainMap == quoteOriginal {
		t.Fatal("edit did not apply")
	}
	d, _ := newTestDecoder(map[uint32]string{2: quoteOriginal, 7: plainMap})
	for _, vendor := range []map[string]string{{"map": "x"}, {"k": "v"}, {"map": "x", "k": "v"}, {}} {
		q := fullQuote()
		q.VendorData = vendor
		for id, schema := range map[uint32]string{2: quoteOriginal, 7: plainMap} {
			var v any = toHQuote(q)
			if id == 7 {
				m := quoteGeneric(toHQuote(q))
				m["vendor_data"] = vendor
				v = m
			}
			got, _, err := d.Quote(context.Background(), writeWith(t, id, schema, v))
			if err != nil {
				t.Fatalf("schema %d %v: %v", id, vendor, err)
			}
			equal(t, fmt.Sprintf("schema %d", id), got.VendorData, vendor)
		}
	}
}

// quoteGeneric is a quote as hamba's generic record, for writer schemas
// whose shapes the struct cannot express.
func quoteGeneric(a avroQuote) map[string]any {
	m := map[string]any{
		"message_id": a.MessageID, "quote_id": a.QuoteID, "symbol": a.Symbol, "exchange": a.Exchange,
		"asset_class": a.AssetClass, "timestamp": a.Timestamp, "bid_price": a.BidPrice, "bid_quantity": a.BidQuantity,
		"ask_price": a.AskPrice, "ask_quantity": a.AskQuantity, "currency": a.Currency,
		"ingestion_timestamp": a.IngestionTimestamp, "source_sequence": nil, "platform_sequence": nil,
	}
	if a.SourceSequence != nil {
		m["source_sequence"] = *a.SourceSequence
	}
	if a.PlatformSequence != nil {
		m["platform_sequence"] = *a.PlatformSequence
	}
	return m
}

func TestResolvedPathErrors(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(map[uint32]string{2: quoteOriginal})
	q := fullQuote()
	good := writeWith(t, 2, quoteOriginal, toHQuote(q))
	tests := map[string][]byte{
		"trailing byte":  append(append([]byte{}, good...), 0),
		"bad union":      append(append([]byte{}, good[:len(good)-1]...), 6),
		"truncated":      good[:len(good)-3],
		"bad message id": mutate(t, good, []byte(q.MessageID.String()[:8]), []byte("zzzzzzzz")),
	}
	for name, msg := range tests {
		_, _, err := d.Quote(context.Background(), msg)
		if !errors.Is(err, ErrMalformed) || marketdata.ReasonOf(err) != marketdata.ReasonUndecodable {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The generic conversion refuses shapes hamba should never produce,
// rather than inventing values.
func TestGenericConversionRejectsUnexpectedValues(t *testing.T) {
	t.Parallel()
	base := func() map[string]any {
		return map[string]any{
			"message_id": "01234567-89ab-cdef-0123-456789abcdef", "trade_id": "B-1", "symbol": "X", "exchange": "B",
			"asset_class": "crypto", "timestamp": time.UnixMicro(1), "price": big.NewRat(1, 1), "quantity": big.NewRat(1, 2),
			"currency": "U", "side": "BUY", "trade_conditions": []any{"a"}, "source_sequence": int64(1),
			"ingestion_timestamp": time.UnixMicro(2), "platform_sequence": nil, "vendor_data": map[string]any{"map": map[string]any{"k": "v"}},
			"is_active": true,
		}
	}
	if _, err := tradeFromGeneric(base()); err != nil {
		t.Fatalf("base: %v", err)
	}
	for field, bad := range map[string]any{
		"symbol":              int64(1),
		"timestamp":           int64(1),
		"ingestion_timestamp": nil,
		"price":               "1.5",
		"quantity":            nil,
		"trade_conditions":    []any{int64(1)},
		"source_sequence":     "1",
		"vendor_data":         map[string]any{"map": map[string]any{"k": int64(1)}},
		"message_id":          "not-a-uuid",
	} {
		m := base()
		m[field] = bad
		if _, err := tradeFromGeneric(m); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s = %v: %v", field, bad, err)
		}
	}
	m := base()
	m["price"] = big.NewRat(1, 1000000000) // 1e-9: finer than decimal(18,8)
	if _, err := tradeFromGeneric(m); !errors.Is(err, ErrMalformed) {
		t.Errorf("1e-9: %v", err)
	}
	m = base()
	m["is_active"] = "yes"
	if _, err := referenceFromGeneric(m); !errors.Is(err, ErrMalformed) {
		t.Errorf("is_active: %v", err)
	}
	m = base()
	m["bid_price"] = "1"
	if _, err := quoteFromGeneric(m); !errors.Is(err, ErrMalformed) {
		t.Errorf("bid_price: %v", err)
	}
}

// A short message claiming a million conditions must not make hamba
// allocate for a million. Not parallel: MemStats counts every goroutine's
// allocations, and serial tests finish before parallel ones start.
func TestResolvedPathBoundsAllocations(t *testing.T) {
	d, _ := newTestDecoder(map[uint32]string{1: tradeV1ish})
	body, err := plainHamba.Marshal(avro.MustParse(tradeV1ish), tradeV1Record{
		MessageID: fullTrade().MessageID.String(), AssetClass: "crypto", Timestamp: time.UnixMicro(1),
		Price: big.NewRat(1, 1), Quantity: big.NewRat(1, 1), Side: "BUY", TradeConditions: []string{"zz"},
	})
	if err != nil {
		t.Fatal(err)
	}
	good := append(AppendHeader(nil, 1), body...)
	if _, _, err := d.Trade(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	for name, msg := range map[string][]byte{
		"array count 2^20": mutate(t, good, []byte("\x02\x04zz\x00"), append(appendLong(nil, 1<<20), "\x04zz\x00"...)),
		"string 2^20 long": mutate(t, good, []byte("\x02\x04zz\x00"), append([]byte{2}, append(appendLong(nil, 1<<20), "zz\x00"...)...)),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, _, err := d.Trade(context.Background(), msg)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 256<<10 {
			t.Errorf("%s: allocated %d bytes for a %d-byte message", name, n, len(msg))
		}
	}
}
