// Package codec holds K2's Avro schemas and the Confluent wire format of the
// Kafka messages that carry trades, quotes and reference data.
//
// A message is one magic byte 0, the writer schema's registry id as a
// big-endian uint32, then the record in Avro binary encoding. The encoders
// (AppendTrade, AppendQuote, AppendReference) and the Decoder's fast path
// are written by hand against K2's own schemas, because the ingestion path
// runs at a million trades per second and github.com/hamba/avro's
// reflective codec is several times slower and allocates (see
// bench_test.go); the tests check the bytes against hamba's in both
// directions. Records written with any other compatible writer schema are
// read through hamba's schema resolution.
package codec

import (
	"embed"
	"fmt"

	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// Schema is one of K2's record schemas.
type Schema struct {
	Name string      // full Avro name, e.g. "com.k2.marketdata.TradeV2"
	Text string      // the .avsc as embedded: what is registered
	Avro avro.Schema // Text parsed by hamba/avro
	// index numbers the schemas in load order: a Decoder keeps one plan
	// per writer schema and K2 schema, in a slice.
	index int
}

//go:embed schemas/*.avsc
var schemaFiles embed.FS

// K2's schemas. Each .avsc is standalone (it defines the AssetClass and
// TradeSide enums it uses), because the registry stores each subject's
// schema on its own and parses it without the others.
var (
	Trade     = mustLoad("schemas/trade_v2.avsc", "com.k2.marketdata.TradeV2")
	Quote     = mustLoad("schemas/quote_v2.avsc", "com.k2.marketdata.QuoteV2")
	Reference = mustLoad("schemas/reference_data_v2.avsc", "com.k2.marketdata.ReferenceDataV2")
	Funding   = mustLoad("schemas/funding_rate_v1.avsc", "com.k2.marketdata.FundingRateV1")
)

// loaded counts the schemas loaded so far (package initialisation only).
var loaded int

// Subject returns the Schema Registry subject of a record type for an asset
// class, e.g. "market.crypto.trades-value". Subjects are per asset class
// and data type, not per topic, so every exchange's topic of one asset class
// shares a schema history.
func Subject(assetClass marketdata.AssetClass, dataType string) string {
	return "market." + string(assetClass) + "." + dataType + "-value"
}

// TopicSubject is the subject of a topic's values under Confluent's
// default naming (TopicNameStrategy), "<topic>-value". K2 registers its
// schemas under it as well as under Subject, so stock serialisers with
// default settings find the schema of the topic they write to, and the
// registry checks what they register there against K2's.
func TopicSubject(topic string) string { return topic + "-value" }

func mustLoad(path, name string) Schema {
	text, err := schemaFiles.ReadFile(path)
	if err != nil {
		panic(err)
	}
	s, err := parseSchema(string(text))
	if err != nil {
		panic(fmt.Sprintf("codec: %s: %v", path, err))
	}
	if got := s.(avro.NamedSchema).FullName(); got != name {
		panic(fmt.Sprintf("codec: %s defines %s, want %s", path, got, name))
	}
	loaded++
	return Schema{Name: name, Text: string(text), Avro: s, index: loaded - 1}
}

// parseSchema parses a schema with a cache of its own. hamba's Parse
// records every named type in a process-wide cache, so an old writer
// schema defining com.k2.marketdata.AssetClass differently would leak into
// later parses; a private cache keeps each schema what its text says.
func parseSchema(text string) (avro.Schema, error) {
	return avro.ParseWithCache(text, "", &avro.SchemaCache{})
}
