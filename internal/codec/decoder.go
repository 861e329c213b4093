package codec

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hamba/avro/v2"

	"github.com/k2-market-data/k2/internal/marketdata"
)

// SchemaLookup returns the text of the writer schema registered under id,
// typically from a Schema Registry client. It is called once per id and
// Decoder; an error is not remembered, so the next message retries.
type SchemaLookup func(ctx context.Context, id uint32) (string, error)

// Decoder reads wire-format messages into K2's records, whatever
// compatible schema they were written with. It is safe for concurrent use.
//
// Messages written with K2's own schema (the same fingerprint, which
// ignores docs and formatting but not logical types) take the hand-written
// fast path. Any other writer schema is resolved against K2's with
// hamba/avro, as Avro's schema-resolution rules describe, so records
// written before a field was added still read, with the field's default.
//
// Decoding does not validate: run the record's Validate, and use marketdata.ReasonOf
// for the dead-letter reason of either kind of failure. The msg slice is
// not retained: the fast path copies the body once, and a record's strings
// share that copy.
type Decoder struct {
	lookup SchemaLookup
	compat *avro.SchemaCompatibility
	api    avro.API

	mu      sync.Mutex                               // serialises writers of schemas
	schemas atomic.Pointer[map[uint32]*writerSchema] // read without locking; replaced on insert
}

// Limits for the resolving path, far above any real trade, so a corrupt
// length or count in a short message cannot make hamba allocate
// megabytes: it sizes byte slices and arrays from the count before reading
// the items (hamba's defaults are 1 MiB and the heap). The fast path needs
// none: it bounds every count by the bytes left.
const (
	maxBytes      = 64 << 10 // longest string or bytes value
	maxSliceAlloc = 4096     // most items in one array (trade_conditions)
)

// NewDecoder returns a Decoder that finds writer schemas with lookup.
func NewDecoder(lookup SchemaLookup) *Decoder {
	d := &Decoder{
		lookup: lookup,
		compat: avro.NewSchemaCompatibility(),
		api:    avro.Config{MaxByteSliceSize: maxBytes, MaxSliceAllocSize: maxSliceAlloc}.Freeze(),
	}
	d.schemas.Store(&map[uint32]*writerSchema{})
	return d
}

// writerSchema is a registered schema and how to read it as each record.
type writerSchema struct {
	id     uint32
	schema avro.Schema            // nil when the text did not parse
	err    error                  // the parse error
	plans  []atomic.Pointer[plan] // by Schema.index
}

// plan is how to read one writer schema as one K2 record.
type plan struct {
	fast     bool        // the writer schema is K2's: use the hand-written decoder
	resolved avro.Schema // otherwise the writer→reader composite schema
	err      error       // the writer cannot be read as this record
}

// Trade decodes a trade message and returns it with its writer schema id.
// The id comes back with errors too, once the header has been read (0
// before), so a dead letter can record which schema it claimed.
//
// Trade, Quote and Reference are written out alike on purpose: one generic
// helper taking the fast decoder as a function value makes the record
// escape to the heap (a typical trade 171 → 268 ns, one more allocation).
func (d *Decoder) Trade(ctx context.Context, msg []byte) (marketdata.Trade, uint32, error) {
	var t marketdata.Trade
	id, err := d.TradeInto(ctx, msg, &t, nil)
	return t, id, err
}

// TradeInto decodes a trade message into dst, its strings copied into a
// (nil: an allocation of their own), and returns the writer schema id like
// Trade. On failure dst is zero.
func (d *Decoder) TradeInto(ctx context.Context, msg []byte, dst *marketdata.Trade, a *Arena) (uint32, error) {
	id, body, p, err := d.prepare(ctx, msg, &Trade)
	if err != nil {
		*dst = marketdata.Trade{}
		return id, err
	}
	if p.fast {
		return id, decodeTrade(body, dst, a)
	}
	m, err := d.decodeResolved(p, body)
	if err == nil {
		*dst, err = tradeFromGeneric(m)
	}
	if err != nil {
		*dst = marketdata.Trade{}
	}
	return id, err
}

// Quote decodes a quote message and returns it with its writer schema id,
// like Trade.
func (d *Decoder) Quote(ctx context.Context, msg []byte) (marketdata.Quote, uint32, error) {
	var q marketdata.Quote
	id, err := d.QuoteInto(ctx, msg, &q, nil)
	return q, id, err
}

// QuoteInto decodes a quote message into dst, its strings copied into a
// (nil: an allocation of their own), and returns the writer schema id like
// Quote. On failure dst is zero.
func (d *Decoder) QuoteInto(ctx context.Context, msg []byte, dst *marketdata.Quote, a *Arena) (uint32, error) {
	id, body, p, err := d.prepare(ctx, msg, &Quote)
	if err != nil {
		*dst = marketdata.Quote{}
		return id, err
	}
	if p.fast {
		return id, decodeQuote(body, dst, a)
	}
	m, err := d.decodeResolved(p, body)
	if err == nil {
		*dst, err = quoteFromGeneric(m)
	}
	if err != nil {
		*dst = marketdata.Quote{}
	}
	return id, err
}

// Reference decodes a reference-data message and returns it with its
// writer schema id, like Trade.
func (d *Decoder) Reference(ctx context.Context, msg []byte) (marketdata.ReferenceData, uint32, error) {
	var r marketdata.ReferenceData
	id, err := d.ReferenceInto(ctx, msg, &r, nil)
	return r, id, err
}

// ReferenceInto decodes a reference-data record message into dst, its strings copied into a
// (nil: an allocation of their own), and returns the writer schema id like
// Reference. On failure dst is zero.
func (d *Decoder) ReferenceInto(ctx context.Context, msg []byte, dst *marketdata.ReferenceData, a *Arena) (uint32, error) {
	id, body, p, err := d.prepare(ctx, msg, &Reference)
	if err != nil {
		*dst = marketdata.ReferenceData{}
		return id, err
	}
	if p.fast {
		return id, decodeReference(body, dst, a)
	}
	m, err := d.decodeResolved(p, body)
	if err == nil {
		*dst, err = referenceFromGeneric(m)
	}
	if err != nil {
		*dst = marketdata.ReferenceData{}
	}
	return id, err
}

// prepare splits the message and finds the plan for its writer schema.
func (d *Decoder) prepare(ctx context.Context, msg []byte, reader *Schema) (uint32, []byte, *plan, error) {
	id, body, err := SplitMessage(msg)
	if err != nil {
		return 0, nil, nil, err
	}
	w, err := d.writer(ctx, id)
	if err != nil {
		return id, nil, nil, err
	}
	p := w.plans[reader.index].Load()
	if p == nil {
		p = d.plan(w, reader)
		w.plans[reader.index].Store(p) // racing goroutines compute the same plan
	}
	if p.err != nil {
		return id, nil, nil, p.err
	}
	return id, body, p, nil
}

// writer returns the cached writer schema of id, looking it up on first use.
func (d *Decoder) writer(ctx context.Context, id uint32) (*writerSchema, error) {
	if w, ok := (*d.schemas.Load())[id]; ok {
		return w, nil
	}
	// The lookup runs unlocked: it may be slow, and other ids must not wait.
	text, err := d.lookup(ctx, id)
	if err != nil {
		return nil, &UnknownSchemaError{ID: id, Err: err}
	}
	w := &writerSchema{id: id, plans: make([]atomic.Pointer[plan], loaded)}
	w.schema, w.err = parseSchema(text)

	d.mu.Lock()
	defer d.mu.Unlock()
	old := *d.schemas.Load()
	if cur, ok := old[id]; ok {
		return cur, nil // another goroutine got there first
	}
	next := make(map[uint32]*writerSchema, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[id] = w
	d.schemas.Store(&next)
	return w, nil
}

// plan decides how to read writer schema w as reader.
func (d *Decoder) plan(w *writerSchema, reader *Schema) *plan {
	fail := func(err error) *plan {
		return &plan{err: &SchemaError{ID: w.id, Record: reader.Name, Err: err}}
	}
	if w.err != nil {
		return fail(fmt.Errorf("parse: %w", w.err))
	}
	if w.schema.Fingerprint() == reader.Avro.Fingerprint() {
		return &plan{fast: true}
	}
	resolved, err := d.compat.Resolve(reader.Avro, w.schema)
	if err != nil {
		return fail(err)
	}
	// hamba resolves by underlying type only: a decimal(18,6) or a
	// timestamp-millis writer would be read as decimal(18,8) or micros,
	// off by a factor of 100 or 1000. Refuse those instead.
	if err := checkLogicalTypes(reader.Avro, w.schema, ""); err != nil {
		return fail(err)
	}
	return &plan{resolved: resolved}
}

// decodeResolved decodes a body with a resolved schema into hamba's
// generic form. It uses a Reader rather than Unmarshal, which reports a
// body cut short at a field boundary as success. hamba reports bad input
// as errors; the recover is a backstop so a corrupt message can never take
// a consumer down.
func (d *Decoder) decodeResolved(p *plan, body []byte) (m map[string]any, err error) {
	defer func() {
		if x := recover(); x != nil {
			m, err = nil, fmt.Errorf("%w: %v", ErrMalformed, x)
		}
	}()
	r := avro.NewReader(nil, 0, avro.WithReaderConfig(d.api))
	r.Reset(body)
	r.ReadVal(p.resolved, &m)
	if r.Error != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, r.Error)
	}
	if r.Peek(); r.Error == nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, errTrailingBytes)
	}
	return m, nil
}

// checkLogicalTypes walks a reader schema and the matching parts of a
// writer schema (already known compatible) and requires every logical type
// the reader relies on (decimal scale, timestamp unit) to be the writer's
// too.
func checkLogicalTypes(reader, writer avro.Schema, path string) error {
	reader, writer = deref(reader), deref(writer)
	if wu, ok := writer.(*avro.UnionSchema); ok {
		for _, w := range wu.Types() {
			if err := checkLogicalTypes(reader, w, path); err != nil {
				return err
			}
		}
		return nil
	}
	if ru, ok := reader.(*avro.UnionSchema); ok {
		// The writer is a single branch: match it with the reader's branch
		// of the same type, as resolution does.
		for _, r := range ru.Types() {
			if deref(r).Type() == writer.Type() {
				return checkLogicalTypes(r, writer, path)
			}
		}
		return nil
	}
	switch r := reader.(type) {
	case *avro.RecordSchema:
		w, ok := writer.(*avro.RecordSchema)
		if !ok {
			return nil
		}
		for _, rf := range r.Fields() {
			if wf := findField(w, rf); wf != nil {
				if err := checkLogicalTypes(rf.Type(), wf.Type(), joinPath(path, rf.Name())); err != nil {
					return err
				}
			}
		}
	case *avro.ArraySchema:
		if w, ok := writer.(*avro.ArraySchema); ok {
			return checkLogicalTypes(r.Items(), w.Items(), path+"[]")
		}
	case *avro.MapSchema:
		if w, ok := writer.(*avro.MapSchema); ok {
			return checkLogicalTypes(r.Values(), w.Values(), path+"{}")
		}
	case *avro.PrimitiveSchema:
		rl := r.Logical()
		if rl == nil {
			return nil
		}
		var wl avro.LogicalSchema
		if w, ok := writer.(*avro.PrimitiveSchema); ok {
			wl = w.Logical()
		}
		if !sameLogical(rl, wl) {
			return fmt.Errorf("field %s: writer type %s, want %s", path, writer, reader)
		}
	}
	return nil
}

func sameLogical(r, w avro.LogicalSchema) bool {
	if w == nil || r.Type() != w.Type() {
		return false
	}
	rd, ok := r.(*avro.DecimalLogicalSchema)
	if !ok {
		return true
	}
	return rd.Scale() == w.(*avro.DecimalLogicalSchema).Scale()
}

func findField(w *avro.RecordSchema, rf *avro.Field) *avro.Field {
	for _, wf := range w.Fields() {
		if wf.Name() == rf.Name() {
			return wf
		}
	}
	for _, wf := range w.Fields() {
		for _, a := range rf.Aliases() {
			if wf.Name() == a {
				return wf
			}
		}
	}
	return nil
}

func deref(s avro.Schema) avro.Schema {
	if r, ok := s.(*avro.RefSchema); ok {
		return r.Schema()
	}
	return s
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Funding decodes a funding-rate message and returns it with its writer
// schema id, like Trade.
func (d *Decoder) Funding(ctx context.Context, msg []byte) (marketdata.FundingRate, uint32, error) {
	var f marketdata.FundingRate
	id, err := d.FundingInto(ctx, msg, &f, nil)
	return f, id, err
}

// FundingInto decodes a funding rate message into dst, its strings copied into a
// (nil: an allocation of their own), and returns the writer schema id like
// Funding. On failure dst is zero.
func (d *Decoder) FundingInto(ctx context.Context, msg []byte, dst *marketdata.FundingRate, a *Arena) (uint32, error) {
	id, body, p, err := d.prepare(ctx, msg, &Funding)
	if err != nil {
		*dst = marketdata.FundingRate{}
		return id, err
	}
	if p.fast {
		return id, decodeFunding(body, dst, a)
	}
	m, err := d.decodeResolved(p, body)
	if err == nil {
		*dst, err = fundingFromGeneric(m)
	}
	if err != nil {
		*dst = marketdata.FundingRate{}
	}
	return id, err
}
