package codec

import (
	"bytes"
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// typicalTrade is what the exchange feeds produce: a Binance trade with
// an exchange sequence and no conditions or extras.
func typicalTrade() marketdata.Trade {
	t := minimalTrade()
	t.SourceSequence = marketdata.SomeInt64(3735683259)
	return t
}

func benchTrades() map[string]marketdata.Trade {
	return map[string]marketdata.Trade{"typical": typicalTrade(), "full": fullTrade()}
}

func BenchmarkAppendTrade(b *testing.B) {
	for name, tr := range benchTrades() {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 512)
			b.ReportAllocs()
			for b.Loop() {
				buf = must(AppendTrade(buf[:0], 1, &tr))
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkDecodeTrade(b *testing.B) {
	ctx := context.Background()
	for name, tr := range benchTrades() {
		b.Run(name, func(b *testing.B) {
			d, _ := newTestDecoder(nil)
			msg := must(AppendTrade(nil, idTrade, &tr))
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := d.Trade(ctx, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// An older writer schema: hamba's resolution and generic decoding.
	b.Run("resolved", func(b *testing.B) {
		d, _ := newTestDecoder(map[uint32]string{1: tradeV1ish})
		tr := typicalTrade()
		seq := int32(7)
		body, err := avro.Marshal(avro.MustParse(tradeV1ish), tradeV1Record{
			MessageID: tr.MessageID.String(), Symbol: tr.Symbol, TradeID: tr.TradeID, Exchange: tr.Exchange,
			AssetClass: string(tr.AssetClass), IngestionTimestamp: int64(tr.IngestionTimestamp), Timestamp: hTime(tr.Timestamp),
			Price: tr.Price.Rat(), Quantity: tr.Quantity.Rat(), Currency: tr.Currency, Side: "BUY", SourceSequence: &seq,
		})
		if err != nil {
			b.Fatal(err)
		}
		msg := append(AppendHeader(nil, 1), body...)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := d.Trade(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAppendQuote(b *testing.B) {
	q := fullQuote()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = must(AppendQuote(buf[:0], 1, &q))
	}
}

func BenchmarkDecodeQuote(b *testing.B) {
	d, _ := newTestDecoder(nil)
	q := fullQuote()
	q.VendorData = nil
	msg := must(AppendQuote(nil, idQuote, &q))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := d.Quote(context.Background(), msg); err != nil {
			b.Fatal(err)
		}
	}
}

// The alternative that was measured and rejected: hamba's reflective codec
// on a mirror struct. Decimals are []byte (hamba accepts them for the
// decimal logical type and they avoid *big.Rat), timestamps int64; the
// conversion to and from marketdata.Trade is part of the cost.
type bytesTrade struct {
	MessageID          string             `avro:"message_id"`
	TradeID            string             `avro:"trade_id"`
	Symbol             string             `avro:"symbol"`
	Exchange           string             `avro:"exchange"`
	AssetClass         string             `avro:"asset_class"`
	Timestamp          int64              `avro:"timestamp"`
	Price              []byte             `avro:"price"`
	Quantity           []byte             `avro:"quantity"`
	Currency           string             `avro:"currency"`
	Side               string             `avro:"side"`
	TradeConditions    []string           `avro:"trade_conditions"`
	SourceSequence     *int64             `avro:"source_sequence"`
	IngestionTimestamp int64              `avro:"ingestion_timestamp"`
	PlatformSequence   *int64             `avro:"platform_sequence"`
	VendorData         *map[string]string `avro:"vendor_data"`
}

func BenchmarkAppendTradeHamba(b *testing.B) {
	for name, tr := range benchTrades() {
		b.Run("bytes decimals/"+name, func(b *testing.B) {
			var out bytes.Buffer
			enc := plainHamba.NewEncoder(Trade.Avro, &out)
			var hdr [HeaderSize]byte
			var price, qty [9]byte
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				out.Write(AppendHeader(hdr[:0], 1))
				v := bytesTrade{
					MessageID: tr.MessageID.String(), TradeID: tr.TradeID, Symbol: tr.Symbol, Exchange: tr.Exchange,
					AssetClass: string(tr.AssetClass), Timestamp: int64(tr.Timestamp),
					Price: appendDecimal(price[:0], tr.Price)[1:], Quantity: appendDecimal(qty[:0], tr.Quantity)[1:],
					Currency: tr.Currency, Side: string(tr.Side), TradeConditions: tr.TradeConditions,
					SourceSequence: hLong(tr.SourceSequence), IngestionTimestamp: int64(tr.IngestionTimestamp),
					PlatformSequence: hLong(tr.PlatformSequence), VendorData: hMap(tr.VendorData),
				}
				if err := enc.Encode(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("big.Rat decimals/"+name, func(b *testing.B) {
			var out bytes.Buffer
			enc := plainHamba.NewEncoder(Trade.Avro, &out)
			b.ReportAllocs()
			for b.Loop() {
				out.Reset()
				out.Write(AppendHeader(nil, 1))
				v := toHTrade(tr)
				if err := enc.Encode(&v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeTradeHamba(b *testing.B) {
	for name, tr := range benchTrades() {
		b.Run("bytes decimals/"+name, func(b *testing.B) {
			body := must(AppendTrade(nil, 1, &tr))[HeaderSize:]
			b.ReportAllocs()
			for b.Loop() {
				var v bytesTrade
				if err := avro.Unmarshal(Trade.Avro, body, &v); err != nil {
					b.Fatal(err)
				}
				t := marketdata.Trade{
					MessageID: uuid.MustParse(v.MessageID), TradeID: v.TradeID, Symbol: v.Symbol, Exchange: v.Exchange,
					AssetClass: marketdata.AssetClass(v.AssetClass), Timestamp: marketdata.Timestamp(v.Timestamp),
					Price: bytesDecimal(v.Price), Quantity: bytesDecimal(v.Quantity), Currency: v.Currency,
					Side: marketdata.Side(v.Side), TradeConditions: v.TradeConditions, SourceSequence: nullLong(v.SourceSequence),
					IngestionTimestamp: marketdata.Timestamp(v.IngestionTimestamp), PlatformSequence: nullLong(v.PlatformSequence),
				}
				if v.VendorData != nil {
					t.VendorData = *v.VendorData
				}
				sink = t
			}
		})
	}
}

var sink marketdata.Trade

// bytesDecimal reads a minimal two's complement of up to 8 bytes.
func bytesDecimal(b []byte) marketdata.Decimal {
	if len(b) == 0 {
		return 0
	}
	v := int64(int8(b[0]))
	for _, c := range b[1:] {
		v = v<<8 | int64(c)
	}
	return marketdata.Decimal(v)
}

func nullLong(p *int64) marketdata.NullInt64 {
	if p == nil {
		return marketdata.NullInt64{}
	}
	return marketdata.SomeInt64(*p)
}
