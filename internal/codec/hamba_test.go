package codec

import (
	"bytes"
	"context"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// These tests pin the hand-written codec to hamba/avro, an independent
// implementation: hamba writes the same bytes for equivalent data, reads
// ours back to the same values, and we read what hamba writes.

// plainHamba writes arrays and maps as positive counts without byte sizes,
// as Java's and Python's encoders do and as AppendTrade does. hamba's
// default (negative counts followed by sizes) is also valid Avro; the
// decoder tests read that form too.
var plainHamba = avro.Config{DisableBlockSizeHeader: true, BlockLength: 1000}.Freeze()

// hamba's idiomatic Go shapes for K2's records: *big.Rat decimals,
// time.Time timestamps, pointers for unions.

type avroTrade struct {
	MessageID          string             `avro:"message_id"`
	TradeID            string             `avro:"trade_id"`
	Symbol             string             `avro:"symbol"`
	Exchange           string             `avro:"exchange"`
	AssetClass         string             `avro:"asset_class"`
	Timestamp          time.Time          `avro:"timestamp"`
	Price              *big.Rat           `avro:"price"`
	Quantity           *big.Rat           `avro:"quantity"`
	Currency           string             `avro:"currency"`
	Side               string             `avro:"side"`
	TradeConditions    []string           `avro:"trade_conditions"`
	SourceSequence     *int64             `avro:"source_sequence"`
	IngestionTimestamp time.Time          `avro:"ingestion_timestamp"`
	PlatformSequence   *int64             `avro:"platform_sequence"`
	VendorData         *map[string]string `avro:"vendor_data"`
}

type avroQuote struct {
	MessageID          string             `avro:"message_id"`
	QuoteID            string             `avro:"quote_id"`
	Symbol             string             `avro:"symbol"`
	Exchange           string             `avro:"exchange"`
	AssetClass         string             `avro:"asset_class"`
	Timestamp          time.Time          `avro:"timestamp"`
	BidPrice           *big.Rat           `avro:"bid_price"`
	BidQuantity        *big.Rat           `avro:"bid_quantity"`
	AskPrice           *big.Rat           `avro:"ask_price"`
	AskQuantity        *big.Rat           `avro:"ask_quantity"`
	Currency           string             `avro:"currency"`
	SourceSequence     *int64             `avro:"source_sequence"`
	IngestionTimestamp time.Time          `avro:"ingestion_timestamp"`
	PlatformSequence   *int64             `avro:"platform_sequence"`
	VendorData         *map[string]string `avro:"vendor_data"`
}

type avroFunding struct {
	MessageID            string             `avro:"message_id"`
	Symbol               string             `avro:"symbol"`
	Exchange             string             `avro:"exchange"`
	AssetClass           string             `avro:"asset_class"`
	Timestamp            time.Time          `avro:"timestamp"`
	MarkPrice            *big.Rat           `avro:"mark_price"`
	IndexPrice           *big.Rat           `avro:"index_price"`
	EstimatedSettlePrice *big.Rat           `avro:"estimated_settle_price"`
	FundingRate          *big.Rat           `avro:"funding_rate"`
	NextFundingTime      *time.Time         `avro:"next_funding_time"`
	Currency             string             `avro:"currency"`
	IngestionTimestamp   time.Time          `avro:"ingestion_timestamp"`
	VendorData           *map[string]string `avro:"vendor_data"`
}

func toHFunding(f marketdata.FundingRate) avroFunding {
	return avroFunding{
		MessageID: f.MessageID.String(), Symbol: f.Symbol, Exchange: f.Exchange, AssetClass: string(f.AssetClass),
		Timestamp: hTime(f.Timestamp), MarkPrice: f.MarkPrice.Rat(), IndexPrice: hRat(f.IndexPrice),
		EstimatedSettlePrice: hRat(f.EstimatedSettlePrice), FundingRate: hRat(f.FundingRate),
		NextFundingTime: hNullTime(f.NextFundingTime), Currency: f.Currency,
		IngestionTimestamp: hTime(f.IngestionTimestamp), VendorData: hMap(f.VendorData),
	}
}

// hamba writes a funding record as AppendFunding does, a negative rate too.
func TestHambaWritesSameFundingBytes(t *testing.T) {
	t.Parallel()
	for name, f := range fundingCases() {
		t.Run(name, func(t *testing.T) {
			if hambaDiffers(f.MarkPrice, f.IndexPrice.Decimal, f.EstimatedSettlePrice.Decimal, f.FundingRate.Decimal) {
				t.Skip("a decimal hamba writes in more bytes")
			}
			want, err := plainHamba.Marshal(Funding.Avro, toHFunding(f))
			if err != nil {
				t.Fatal(err)
			}
			if got := must(AppendFunding(nil, 1, &f))[HeaderSize:]; !bytes.Equal(got, want) {
				t.Errorf("\n got % x\nwant % x", got, want)
			}
		})
	}
}

type avroReference struct {
	MessageID          string             `avro:"message_id"`
	CompanyID          string             `avro:"company_id"`
	Symbol             string             `avro:"symbol"`
	Exchange           string             `avro:"exchange"`
	AssetClass         string             `avro:"asset_class"`
	CompanyName        string             `avro:"company_name"`
	ISIN               *string            `avro:"isin"`
	Currency           *string            `avro:"currency"`
	ListingDate        *time.Time         `avro:"listing_date"`
	DelistingDate      *time.Time         `avro:"delisting_date"`
	IsActive           bool               `avro:"is_active"`
	IngestionTimestamp time.Time          `avro:"ingestion_timestamp"`
	VendorData         *map[string]string `avro:"vendor_data"`
}

func hTime(t marketdata.Timestamp) time.Time { return time.UnixMicro(int64(t)).UTC() }

func hRat(d marketdata.NullDecimal) *big.Rat {
	if !d.Valid {
		return nil
	}
	return d.Decimal.Rat()
}

func hLong(v marketdata.NullInt64) *int64 {
	if !v.Valid {
		return nil
	}
	return &v.Int64
}

func hMap(m map[string]string) *map[string]string {
	if m == nil {
		return nil
	}
	return &m
}

func hString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func hNullTime(t marketdata.NullTimestamp) *time.Time {
	if !t.Valid {
		return nil
	}
	v := hTime(t.Timestamp)
	return &v
}

func toHTrade(t marketdata.Trade) avroTrade {
	return avroTrade{
		MessageID: t.MessageID.String(), TradeID: t.TradeID, Symbol: t.Symbol, Exchange: t.Exchange,
		AssetClass: string(t.AssetClass), Timestamp: hTime(t.Timestamp),
		Price: t.Price.Rat(), Quantity: t.Quantity.Rat(), Currency: t.Currency, Side: string(t.Side),
		TradeConditions: t.TradeConditions, SourceSequence: hLong(t.SourceSequence),
		IngestionTimestamp: hTime(t.IngestionTimestamp), PlatformSequence: hLong(t.PlatformSequence),
		VendorData: hMap(t.VendorData),
	}
}

func toHQuote(q marketdata.Quote) avroQuote {
	return avroQuote{
		MessageID: q.MessageID.String(), QuoteID: q.QuoteID, Symbol: q.Symbol, Exchange: q.Exchange,
		AssetClass: string(q.AssetClass), Timestamp: hTime(q.Timestamp),
		BidPrice: hRat(q.BidPrice), BidQuantity: hRat(q.BidQuantity), AskPrice: hRat(q.AskPrice), AskQuantity: hRat(q.AskQuantity),
		Currency: q.Currency, SourceSequence: hLong(q.SourceSequence),
		IngestionTimestamp: hTime(q.IngestionTimestamp), PlatformSequence: hLong(q.PlatformSequence),
		VendorData: hMap(q.VendorData),
	}
}

func toHReference(r marketdata.ReferenceData) avroReference {
	return avroReference{
		MessageID: r.MessageID.String(), CompanyID: r.CompanyID, Symbol: r.Symbol, Exchange: r.Exchange,
		AssetClass: string(r.AssetClass), CompanyName: r.CompanyName, ISIN: hString(r.ISIN), Currency: hString(r.Currency),
		ListingDate: hNullTime(r.ListingDate), DelistingDate: hNullTime(r.DelistingDate), IsActive: r.IsActive,
		IngestionTimestamp: hTime(r.IngestionTimestamp), VendorData: hMap(r.VendorData),
	}
}

// hambaDiffers reports values whose bytes legitimately differ: hamba
// cannot write decimals beyond 18 digits (it enforces the precision), and
// for -2^7, -2^15, … it writes one sign byte more than the minimal
// two's complement AppendTrade writes (both read back the same).
func hambaDiffers(ds ...marketdata.Decimal) bool {
	for _, d := range ds {
		if d > marketdata.MaxDecimalUnits || d < -marketdata.MaxDecimalUnits {
			return true
		}
		if d < 0 {
			if m := -d; m&(m-1) == 0 && (bitsLen(uint64(m))-1)%8 == 7 {
				return true
			}
		}
	}
	return false
}

func bitsLen(x uint64) int {
	n := 0
	for ; x != 0; x >>= 1 {
		n++
	}
	return n
}

// Vendor maps of more than one key cannot be compared byte for byte: hamba
// writes them in Go's random map order.
func comparableBytes(m map[string]string) bool { return len(m) <= 1 }

func TestHambaWritesSameTradeBytes(t *testing.T) {
	t.Parallel()
	compared := 0
	for name, tr := range tradeCases() {
		if hambaDiffers(tr.Price, tr.Quantity) {
			continue
		}
		if !comparableBytes(tr.VendorData) {
			tr.VendorData = map[string]string{"only": "one"}
		}
		t.Run(name, func(t *testing.T) {
			want, err := plainHamba.Marshal(Trade.Avro, toHTrade(tr))
			if err != nil {
				t.Fatal(err)
			}
			got := must(AppendTrade(nil, 1, &tr))[HeaderSize:]
			if !bytes.Equal(got, want) {
				t.Errorf("\n got % x\nwant % x", got, want)
			}
		})
		compared++
	}
	if compared < 10 {
		t.Fatalf("only %d cases compared", compared)
	}
}

func TestHambaWritesSameQuoteBytes(t *testing.T) {
	t.Parallel()
	for name, q := range quoteCases() {
		if hambaDiffers(q.BidPrice.Decimal, q.BidQuantity.Decimal, q.AskPrice.Decimal, q.AskQuantity.Decimal) {
			continue
		}
		t.Run(name, func(t *testing.T) {
			want, err := plainHamba.Marshal(Quote.Avro, toHQuote(q))
			if err != nil {
				t.Fatal(err)
			}
			if got := must(AppendQuote(nil, 1, &q))[HeaderSize:]; !bytes.Equal(got, want) {
				t.Errorf("\n got % x\nwant % x", got, want)
			}
		})
	}
}

func TestHambaWritesSameReferenceBytes(t *testing.T) {
	t.Parallel()
	for name, r := range referenceCases() {
		if !comparableBytes(r.VendorData) {
			r.VendorData = map[string]string{"gics": "Materials"}
		}
		t.Run(name, func(t *testing.T) {
			want, err := plainHamba.Marshal(Reference.Avro, toHReference(r))
			if err != nil {
				t.Fatal(err)
			}
			if got := must(AppendReference(nil, 1, &r))[HeaderSize:]; !bytes.Equal(got, want) {
				t.Errorf("\n got % x\nwant % x", got, want)
			}
		})
	}
}

// Decimals on their own, over many random values: byte-identical to hamba
// except where hambaDiffers says why, and always the same value when hamba
// reads ours.
func TestDecimalBytesMatchHamba(t *testing.T) {
	t.Parallel()
	schema := avro.MustParse(decimalType)
	rng := rand.New(rand.NewPCG(1, 2))
	values := append([]marketdata.Decimal{}, edgeDecimals...)
	for range 20000 {
		v := rng.Int64() >> rng.IntN(64) // every magnitude
		if rng.IntN(2) == 0 {
			v = -v
		}
		values = append(values, marketdata.Decimal(v))
	}
	for i := 1; i < 64; i++ {
		values = append(values, marketdata.Decimal(int64(1)<<i), marketdata.Decimal(-(int64(1) << i)), marketdata.Decimal(int64(1)<<i-1))
	}
	for _, d := range values {
		ours := appendDecimal(nil, d)
		var back *big.Rat
		if err := avro.Unmarshal(schema, ours, &back); err != nil {
			t.Fatalf("%d: %v", d, err)
		}
		if back.Cmp(d.Rat()) != 0 {
			t.Fatalf("%d: hamba read %s", d, back.FloatString(8))
		}
		if hambaDiffers(d) {
			continue
		}
		theirs, err := avro.Marshal(schema, d.Rat())
		if err != nil {
			t.Fatalf("%d: %v", d, err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("%d: ours % x, hamba % x", d, ours, theirs)
		}
		r := newReader(theirs)
		if got := r.decimal("d"); got != d || r.finish() != nil {
			t.Fatalf("%d: read hamba's bytes as %d (%v)", d, got, r.finish())
		}
	}
}

// hamba's generic decoding of our bytes gives K2's values.
func TestHambaReadsOurTrades(t *testing.T) {
	t.Parallel()
	for name, tr := range tradeCases() {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := avro.Unmarshal(Trade.Avro, must(AppendTrade(nil, 1, &tr))[HeaderSize:], &m); err != nil {
				t.Fatal(err)
			}
			equal(t, "message_id", m["message_id"], any(tr.MessageID.String()))
			equal(t, "trade_id", m["trade_id"], any(tr.TradeID))
			equal(t, "symbol", m["symbol"], any(tr.Symbol))
			equal(t, "exchange", m["exchange"], any(tr.Exchange))
			equal(t, "asset_class", m["asset_class"], any(string(tr.AssetClass)))
			equal(t, "timestamp", m["timestamp"].(time.Time).UnixMicro(), int64(tr.Timestamp))
			ratEqual(t, "price", m["price"], tr.Price)
			ratEqual(t, "quantity", m["quantity"], tr.Quantity)
			equal(t, "currency", m["currency"], any(tr.Currency))
			equal(t, "side", m["side"], any(string(tr.Side)))
			conds := []any{}
			for _, c := range tr.TradeConditions {
				conds = append(conds, c)
			}
			equal(t, "trade_conditions", m["trade_conditions"], any(conds))
			equal(t, "source_sequence", m["source_sequence"], hambaBare(tr.SourceSequence.Valid, tr.SourceSequence.Int64))
			equal(t, "ingestion_timestamp", m["ingestion_timestamp"].(time.Time).UnixMicro(), int64(tr.IngestionTimestamp))
			equal(t, "platform_sequence", m["platform_sequence"], hambaBare(tr.PlatformSequence.Valid, tr.PlatformSequence.Int64))
			equal(t, "vendor_data", m["vendor_data"], hambaVendor(tr.VendorData))
		})
	}
}

func TestHambaReadsOurQuotes(t *testing.T) {
	t.Parallel()
	for name, q := range quoteCases() {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			if err := avro.Unmarshal(Quote.Avro, must(AppendQuote(nil, 1, &q))[HeaderSize:], &m); err != nil {
				t.Fatal(err)
			}
			equal(t, "message_id", m["message_id"], any(q.MessageID.String()))
			equal(t, "quote_id", m["quote_id"], any(q.QuoteID))
			equal(t, "timestamp", m["timestamp"].(time.Time).UnixMicro(), int64(q.Timestamp))
			for field, d := range map[string]marketdata.NullDecimal{
				"bid_price": q.BidPrice, "bid_quantity": q.BidQuantity, "ask_price": q.AskPrice, "ask_quantity": q.AskQuantity,
			} {
				if !d.Valid {
					equal(t, field, m[field], any(nil))
					continue
				}
				ratEqual(t, field, m[field], d.Decimal)
			}
			equal(t, "currency", m["currency"], any(q.Currency))
			equal(t, "source_sequence", m["source_sequence"], hambaBare(q.SourceSequence.Valid, q.SourceSequence.Int64))
			equal(t, "vendor_data", m["vendor_data"], hambaVendor(q.VendorData))
		})
	}
}

func TestHambaReadsOurReferenceData(t *testing.T) {
	t.Parallel()
	for name, r := range referenceCases() {
		t.Run(name, func(t *testing.T) {
			var got avroReference
			if err := avro.Unmarshal(Reference.Avro, must(AppendReference(nil, 1, &r))[HeaderSize:], &got); err != nil {
				t.Fatal(err)
			}
			want := toHReference(r)
			// time.Time carries a location; compare instants.
			equal(t, "ingestion", got.IngestionTimestamp.UnixMicro(), want.IngestionTimestamp.UnixMicro())
			got.IngestionTimestamp, want.IngestionTimestamp = time.Time{}, time.Time{}
			for _, p := range []*[2]*time.Time{{got.ListingDate, want.ListingDate}, {got.DelistingDate, want.DelistingDate}} {
				if (p[0] == nil) != (p[1] == nil) || p[0] != nil && !p[0].Equal(*p[1]) {
					t.Errorf("date %v, want %v", p[0], p[1])
				}
			}
			got.ListingDate, want.ListingDate, got.DelistingDate, want.DelistingDate = nil, nil, nil, nil
			equal(t, "reference", got, want)
		})
	}
}

func ratEqual(t *testing.T, field string, v any, d marketdata.Decimal) {
	t.Helper()
	r, ok := v.(*big.Rat)
	if !ok || r.Cmp(d.Rat()) != 0 {
		t.Errorf("%s: hamba read %v, want %s", field, v, d.Rat().FloatString(8))
	}
}

// hambaBare is how hamba's generic decoding returns a union of null and a
// primitive or logical type: the value itself, or nil.
func hambaBare(valid bool, v any) any {
	if !valid {
		return nil
	}
	return v
}

// hambaVendor is how it returns a union branch it has no Go type for: a
// map from the branch's type name to the value.
func hambaVendor(m map[string]string) any {
	if m == nil {
		return nil
	}
	entries := map[string]any{}
	for k, v := range m {
		entries[k] = v
	}
	return map[string]any{"map": entries}
}

// Our decoder reads what hamba writes, in both of hamba's block layouts.
func TestDecoderReadsHambaBytes(t *testing.T) {
	t.Parallel()
	d, _ := newTestDecoder(nil)
	ctx := context.Background()
	for cfgName, cfg := range map[string]avro.API{"default": avro.DefaultConfig, "plain": plainHamba} {
		for name, tr := range tradeCases() {
			if hambaDiffers(tr.Price, tr.Quantity) {
				continue
			}
			body, err := cfg.Marshal(Trade.Avro, toHTrade(tr))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, _, err := d.Trade(ctx, append(AppendHeader(nil, idTrade), body...))
			if err != nil {
				t.Fatalf("%s/%s: %v", cfgName, name, err)
			}
			equal(t, cfgName+"/"+name, got, normTrade(tr))
		}
		for name, q := range quoteCases() {
			if hambaDiffers(q.BidPrice.Decimal, q.BidQuantity.Decimal, q.AskPrice.Decimal, q.AskQuantity.Decimal) {
				continue
			}
			body, err := cfg.Marshal(Quote.Avro, toHQuote(q))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, _, err := d.Quote(ctx, append(AppendHeader(nil, idQuote), body...))
			if err != nil {
				t.Fatalf("%s/%s: %v", cfgName, name, err)
			}
			equal(t, cfgName+"/"+name, got, q)
		}
		for name, r := range referenceCases() {
			body, err := cfg.Marshal(Reference.Avro, toHReference(r))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, _, err := d.Reference(ctx, append(AppendHeader(nil, idReference), body...))
			if err != nil {
				t.Fatalf("%s/%s: %v", cfgName, name, err)
			}
			equal(t, cfgName+"/"+name, got, r)
		}
	}
}

// Fixed-width writers pad decimals with sign bytes; those still read.
func TestDecimalPaddedToSixteenBytes(t *testing.T) {
	t.Parallel()
	for _, d := range edgeDecimals {
		ext := byte(0)
		if d < 0 {
			ext = 0xff
		}
		raw := bytes.Repeat([]byte{ext}, 8)
		for i := 7; i >= 0; i-- {
			raw = append(raw, byte(int64(d)>>(8*i)))
		}
		r := newReader(append([]byte{32}, raw...))
		if got := r.decimal("d"); got != d || r.finish() != nil {
			t.Errorf("%d: got %d, %v", d, got, r.finish())
		}
	}
}
