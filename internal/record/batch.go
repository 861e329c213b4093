package record

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Batch gathers one kind's records for one commit to its table. The sink
// fills it from Kafka messages, a loader from parsed records; both commit
// it when Limits say it is due. A Batch is not safe for concurrent use.
type Batch interface {
	Describe() *Spec
	// AddMessage decodes a wire-format message, validates the record,
	// checks that it is of exchange (the topic's) and adds it. Meta
	// describes it for the caller's own checks; Undo takes it out again.
	AddMessage(ctx context.Context, d *codec.Decoder, msg []byte, exchange string) (Meta, error)
	// Undo removes the record AddMessage added last.
	Undo()
	// Reserve makes room for n more records at once.
	Reserve(n int)
	// Len is the number of records held, Bytes the size of the messages
	// they came from (0 for records added directly), Since when the first
	// was added.
	Len() int
	Bytes() int
	Since() time.Time
	// Commit writes what is held as one transaction; the batch keeps it
	// until Reset.
	Commit(ctx context.Context, props map[string]string, opts ...lake.CommitOption) (lake.CommitResult, error)
	// Reset empties the batch, keeping its memory for the next records.
	Reset()
	// Another returns a new empty batch on the same table, so that one can
	// fill while another commits.
	Another() Batch
}

// Meta is what the sink needs to know of a decoded record.
type Meta struct {
	Symbol   string
	Sequence md.NullInt64 // for Sequenced kinds
	Time     md.Timestamp // event time; 0 for kinds without one
}

// Limits close a batch: at Rows records, Bytes of messages or Age after
// the first record, whichever comes first (zero: no limit of that kind).
type Limits struct {
	Rows  int
	Bytes int
	Age   time.Duration
}

// Due reports whether a batch holding rows records of bytes, the first
// added at since, should be committed at now.
func (l Limits) Due(rows, bytes int, since, now time.Time) bool {
	return (l.Rows > 0 && rows >= l.Rows) || (l.Bytes > 0 && bytes >= l.Bytes) || (l.Age > 0 && !since.IsZero() && now.Sub(since) >= l.Age)
}

// Add adds a record to a batch of its kind.
func Add[T any](b Batch, r T) {
	rb := b.(*rows[T])
	if len(rb.rows) == 0 {
		rb.since = time.Now()
	}
	rb.rows = append(rb.rows, r)
}

// NewBatch opens a batch of this kind on its table in l.
func (k *Kind[T]) NewBatch(l *lake.Lake, opts ...lake.WriterOption) (Batch, error) {
	w, err := k.Writer(l, opts...)
	if err != nil {
		return nil, err
	}
	return &rows[T]{k: k, w: w}, nil
}

// rows is the Batch of a kind of type T.
type rows[T any] struct {
	k     *Kind[T]
	w     *lake.Writer[T]
	rows  []T
	bytes int
	since time.Time
	last  int // size of the message added last, for Undo
	// text holds the strings of decoded records. Strings of records
	// committed and reset stay valid: their blocks are never reused.
	text codec.Arena
}

func (b *rows[T]) Describe() *Spec  { return &b.k.Spec }
func (b *rows[T]) Len() int         { return len(b.rows) }
func (b *rows[T]) Bytes() int       { return b.bytes }
func (b *rows[T]) Since() time.Time { return b.since }
func (b *rows[T]) Another() Batch   { return &rows[T]{k: b.k, w: b.w} }

func (b *rows[T]) AddMessage(ctx context.Context, d *codec.Decoder, msg []byte, exchange string) (Meta, error) {
	// The record is decoded straight into the slice and checked there, its
	// text in the batch's arena: no copy of the record and no allocation
	// per record. Slots past the end are zero (Reset, Undo and a failed
	// decode clear them).
	if len(b.rows) == cap(b.rows) {
		// Double: append grows a large slice by about a quarter, which
		// copied a first batch of 200k records some five times over.
		b.rows = slices.Grow(b.rows, max(len(b.rows), 1024))
	}
	b.rows = b.rows[:len(b.rows)+1]
	p := &b.rows[len(b.rows)-1]
	if _, err := b.k.Decode(d, ctx, msg, p, &b.text); err != nil {
		b.rows = b.rows[:len(b.rows)-1]
		return Meta{}, err
	}
	if len(b.rows) == 1 {
		b.since = time.Now()
	}
	if err := b.check(p, exchange); err != nil {
		var zero T
		*p = zero
		b.rows = b.rows[:len(b.rows)-1]
		return Meta{}, err
	}
	b.bytes += len(msg)
	b.last = len(msg)
	m := Meta{Symbol: b.k.Rows.Symbol(p)}
	if b.k.Sequence != nil {
		m.Sequence = b.k.Sequence(p)
	}
	if b.k.Rows.Time != nil {
		m.Time = b.k.Rows.Time(p)
	}
	return m, nil
}

// check validates a decoded record and rejects one of another exchange
// than its topic's.
func (b *rows[T]) check(r *T, exchange string) error {
	if err := b.k.Validate(r); err != nil {
		return err
	}
	if got := b.k.Exchange(r); got != exchange {
		return &md.ValidationError{Field: "exchange", Reason: fmt.Sprintf("%s record on the %s topic", got, exchange)}
	}
	return nil
}

func (b *rows[T]) Reserve(n int) { b.rows = slices.Grow(b.rows, n) }

func (b *rows[T]) Undo() {
	n := len(b.rows) - 1
	if n < 0 {
		return
	}
	var zero T
	b.rows[n] = zero
	b.rows = b.rows[:n]
	b.bytes -= b.last
	b.last = 0
}

func (b *rows[T]) Commit(ctx context.Context, props map[string]string, opts ...lake.CommitOption) (lake.CommitResult, error) {
	return b.w.Commit(ctx, b.rows, props, opts...)
}

func (b *rows[T]) Reset() {
	clear(b.rows) // let the strings go
	b.rows, b.bytes, b.last, b.since = b.rows[:0], 0, 0, time.Time{}
}
