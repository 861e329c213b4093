package codec

import (
	"encoding/json"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/marketdata"
)

const (
	decimalType = `{"type":"bytes","logicalType":"decimal","precision":18,"scale":8}`
	tsType      = `{"type":"long","logicalType":"timestamp-micros"}`
	assetEnum   = `{"name":"com.k2.marketdata.AssetClass","type":"enum","symbols":["equities","crypto","futures","options"]}`
	sideEnum    = `{"name":"com.k2.marketdata.TradeSide","type":"enum","symbols":["BUY","SELL","SELL_SHORT","UNKNOWN"]}`
	vendorType  = `["null",{"type":"map","values":"string"}]`
)

type wantField struct {
	name, typ  string
	hasDefault bool
	def        any
}

// The field lists of reference §3.1, in order, as hamba prints the types.
var wantFields = map[string][]wantField{
	"com.k2.marketdata.TradeV2": {
		{name: "message_id", typ: `"string"`},
		{name: "trade_id", typ: `"string"`},
		{name: "symbol", typ: `"string"`},
		{name: "exchange", typ: `"string"`},
		{name: "asset_class", typ: assetEnum},
		{name: "timestamp", typ: tsType},
		{name: "price", typ: decimalType},
		{name: "quantity", typ: decimalType},
		{name: "currency", typ: `"string"`},
		{name: "side", typ: sideEnum},
		{name: "trade_conditions", typ: `{"type":"array","items":"string"}`},
		{name: "source_sequence", typ: `["null","long"]`, hasDefault: true},
		{name: "ingestion_timestamp", typ: tsType},
		{name: "platform_sequence", typ: `["null","long"]`, hasDefault: true},
		{name: "vendor_data", typ: vendorType, hasDefault: true},
	},
	"com.k2.marketdata.QuoteV2": {
		{name: "message_id", typ: `"string"`},
		{name: "quote_id", typ: `"string"`},
		{name: "symbol", typ: `"string"`},
		{name: "exchange", typ: `"string"`},
		{name: "asset_class", typ: assetEnum},
		{name: "timestamp", typ: tsType},
		{name: "bid_price", typ: `["null",` + decimalType + `]`, hasDefault: true},
		{name: "bid_quantity", typ: `["null",` + decimalType + `]`, hasDefault: true},
		{name: "ask_price", typ: `["null",` + decimalType + `]`, hasDefault: true},
		{name: "ask_quantity", typ: `["null",` + decimalType + `]`, hasDefault: true},
		{name: "currency", typ: `"string"`},
		{name: "source_sequence", typ: `["null","long"]`, hasDefault: true},
		{name: "ingestion_timestamp", typ: tsType},
		{name: "platform_sequence", typ: `["null","long"]`, hasDefault: true},
		{name: "vendor_data", typ: vendorType, hasDefault: true},
	},
	"com.k2.marketdata.ReferenceDataV2": {
		{name: "message_id", typ: `"string"`},
		{name: "company_id", typ: `"string"`},
		{name: "symbol", typ: `"string"`},
		{name: "exchange", typ: `"string"`},
		{name: "asset_class", typ: assetEnum},
		{name: "company_name", typ: `"string"`},
		{name: "isin", typ: `["null","string"]`, hasDefault: true},
		{name: "currency", typ: `["null","string"]`, hasDefault: true},
		{name: "listing_date", typ: `["null",` + tsType + `]`, hasDefault: true},
		{name: "delisting_date", typ: `["null",` + tsType + `]`, hasDefault: true},
		{name: "is_active", typ: `"boolean"`, hasDefault: true, def: true},
		{name: "ingestion_timestamp", typ: tsType},
		{name: "vendor_data", typ: vendorType, hasDefault: true},
	},
}

func TestSchemasMatchReference(t *testing.T) {
	t.Parallel()
	for _, s := range allSchemas {
		t.Run(s.Name, func(t *testing.T) {
			// Standalone: a fresh cache, and hamba's plain Parse too.
			parsed, err := avro.ParseWithCache(s.Text, "", &avro.SchemaCache{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := avro.Parse(s.Text); err != nil {
				t.Fatal(err)
			}
			rec := parsed.(*avro.RecordSchema)
			if rec.FullName() != s.Name || s.Avro.(*avro.RecordSchema).FullName() != s.Name {
				t.Fatalf("name %s", rec.FullName())
			}
			if rec.Doc() == "" {
				t.Error("record has no doc")
			}
			want := wantFields[s.Name]
			if len(rec.Fields()) != len(want) {
				t.Fatalf("%d fields, want %d", len(rec.Fields()), len(want))
			}
			for i, f := range rec.Fields() {
				w := want[i]
				if f.Name() != w.name || f.Type().String() != w.typ {
					t.Errorf("field %d: %s %s, want %s %s", i, f.Name(), f.Type(), w.name, w.typ)
				}
				if f.HasDefault() != w.hasDefault || f.Default() != w.def {
					t.Errorf("field %s: default %v %v, want %v %v", f.Name(), f.HasDefault(), f.Default(), w.hasDefault, w.def)
				}
				if f.Doc() == "" {
					t.Errorf("field %s has no doc", f.Name())
				}
			}
		})
	}
}

// The texts are what gets registered: they must be plain JSON objects.
func TestSchemaTextsAreJSON(t *testing.T) {
	t.Parallel()
	for _, s := range allSchemas {
		var v map[string]any
		if err := json.Unmarshal([]byte(s.Text), &v); err != nil {
			t.Errorf("%s: %v", s.Name, err)
		}
	}
}

func TestSubject(t *testing.T) {
	t.Parallel()
	tests := []struct {
		asset marketdata.AssetClass
		data  string
		want  string
	}{
		{marketdata.Crypto, "trades", "market.crypto.trades-value"},
		{marketdata.Equities, "quotes", "market.equities.quotes-value"},
		{marketdata.Crypto, "reference_data", "market.crypto.reference_data-value"},
		{marketdata.Futures, "trades", "market.futures.trades-value"},
	}
	for _, tt := range tests {
		if got := Subject(tt.asset, tt.data); got != tt.want {
			t.Errorf("Subject(%s, %s) = %s, want %s", tt.asset, tt.data, got, tt.want)
		}
	}
}

// The encoder's enum tables must follow the schemas' symbol order.
func TestEnumOrderMatchesSchemas(t *testing.T) {
	t.Parallel()
	for _, s := range allSchemas {
		for _, f := range s.Avro.(*avro.RecordSchema).Fields() {
			e, ok := deref(f.Type()).(*avro.EnumSchema)
			if !ok {
				continue
			}
			var got []string
			switch e.Name() {
			case "AssetClass":
				for _, a := range assetClassSymbols {
					got = append(got, string(a))
				}
			case "TradeSide":
				for _, s := range sideSymbols {
					got = append(got, string(s))
				}
			}
			equal(t, s.Name+"."+f.Name(), got, e.Symbols())
		}
	}
}
