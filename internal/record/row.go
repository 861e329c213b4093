package record

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Row is one record of any kind with the fields that place it: code that
// holds records of every kind (the API's in-memory tail) keeps Rows and
// turns them back into the kind's table columns with Any.Arrow.
type Row struct {
	Symbol, Exchange, Key string
	Time                  md.Timestamp
	Seq                   md.NullInt64 // the exchange sequence of a Sequenced kind
	Value                 any          // the record, of the kind's Go type
}

// DecodeRow reads a wire-format message of the kind into a Row; a record
// that breaks the kind's rules is an error, as the sink would dead-letter
// it.
func (k *Kind[T]) DecodeRow(d *codec.Decoder, ctx context.Context, msg []byte) (Row, error) {
	var v T
	if _, err := k.Decode(d, ctx, msg, &v, nil); err != nil {
		return Row{}, err
	}
	if err := k.Validate(&v); err != nil {
		return Row{}, err
	}
	r := Row{Symbol: k.Rows.Symbol(&v), Exchange: k.Exchange(&v), Key: k.Rows.Key(&v), Value: v}
	if k.Rows.Time != nil {
		r.Time = k.Rows.Time(&v)
	}
	if k.Sequence != nil {
		r.Seq = k.Sequence(&v)
	}
	return r, nil
}

// Arrow encodes rows of the kind, in order, in the table's columns (the
// schema query.Schema gives).
func (k *Kind[T]) Arrow(rows []Row) arrow.RecordBatch {
	vals := make([]T, len(rows))
	order := make([]int, len(rows))
	for i, r := range rows {
		vals[i], order[i] = r.Value.(T), i
	}
	return k.Rows.Record(lake.ArrowSchema(k.Table.Schema), vals, order)
}
