package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// formats are the answers a record read can take; ndjson is replay's.
var formats = []string{"json", "csv", "parquet", "arrow"}

// columns is a kind's rows as clients receive them: the table's columns,
// led by what the kind derives rather than stores (message_id).
type columns struct {
	spec   *record.Spec
	schema *arrow.Schema
	derive bool
	sym    int // the symbol and key columns in the table's rows
	key    int
	// decimals are the decimal columns (the min_/max_ parameters).
	decimals []string
	// pick, when set, are the columns of full answered (fields=).
	pick []int
	full *arrow.Schema
	// keys are the columns' names as JSON object keys, each with its
	// colon, made with the schema.
	keys [][]byte
}

// columnsOf is a kind's client columns, made once per kind.
func columnsOf(k record.Any) *columns {
	if c, ok := kindColumns.Load(k.Describe().Table.Name); ok {
		return c.(*columns)
	}
	c := makeColumns(k)
	kindColumns.Store(k.Describe().Table.Name, c)
	return c
}

var kindColumns sync.Map // table name → *columns

func makeColumns(k record.Any) *columns {
	s := k.Describe()
	sc := query.Schema(&s.Table)
	c := &columns{spec: s, schema: sc, sym: sc.FieldIndices(s.Table.Symbol)[0], key: sc.FieldIndices(s.Table.Key)[0]}
	for _, f := range sc.Fields() {
		if f.Type.ID() == arrow.DECIMAL128 {
			c.decimals = append(c.decimals, f.Name)
		}
	}
	for _, d := range s.Derived {
		if d == "message_id" {
			c.derive = true
			c.schema = arrow.NewSchema(append([]arrow.Field{{Name: "message_id", Type: arrow.BinaryTypes.String}}, sc.Fields()...), nil)
		}
	}
	c.keys = objectKeys(c.schema)
	return c
}

// names are the columns' names, in order.
func (c *columns) names() []string {
	out := make([]string, c.schema.NumFields())
	for i, f := range c.schema.Fields() {
		out[i] = f.Name
	}
	return out
}

// with adds columns after the kind's own (a join's).
func (c *columns) with(fields []arrow.Field) *columns {
	p := *c
	p.schema = arrow.NewSchema(append(slices.Clone(c.schema.Fields()), fields...), nil)
	p.keys = objectKeys(p.schema)
	return &p
}

// project keeps only the named columns, in the order given.
func (c *columns) project(names []string) *columns {
	p := *c
	fields := make([]arrow.Field, len(names))
	p.pick = make([]int, len(names))
	for i, n := range names {
		j := c.schema.FieldIndices(n)[0]
		fields[i], p.pick[i] = c.schema.Field(j), j
	}
	p.schema = arrow.NewSchema(fields, nil)
	p.full = c.schema
	p.keys = objectKeys(p.schema)
	return &p
}

// of returns rec in the client's columns (a new reference either way).
func (c *columns) of(rec arrow.RecordBatch) arrow.RecordBatch {
	all := c.all(rec)
	if c.pick == nil {
		return all
	}
	defer all.Release()
	cols := make([]arrow.Array, len(c.pick))
	for i, j := range c.pick {
		cols[i] = all.Column(j)
	}
	return array.NewRecordBatch(c.schema, cols, all.NumRows())
}

// all is rec with the derived columns (rec itself when it has them: the
// latest records kept in memory are derived once).
func (c *columns) all(rec arrow.RecordBatch) arrow.RecordBatch {
	full := c.schema
	if c.full != nil {
		full = c.full
	}
	if !c.derive || rec.NumCols() == int64(full.NumFields()) {
		rec.Retain()
		return rec
	}
	b := array.NewStringBuilder(memory.DefaultAllocator)
	defer b.Release()
	sym, key := rec.Column(c.sym).(*array.String), rec.Column(c.key).(*array.String)
	for i := range int(rec.NumRows()) {
		b.Append(md.MessageID(c.spec.Name, sym.Value(i), key.Value(i)).String())
	}
	ids := b.NewArray()
	defer ids.Release()
	sc := c.schema
	if c.full != nil {
		sc = c.full
	}
	return array.NewRecordBatch(sc, append([]arrow.Array{ids}, rec.Columns()...), rec.NumRows())
}

// pagination says where a paged answer stands.
type pagination struct {
	Limit      int    `json:"limit"`
	Count      int    `json:"count"`
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// encoder writes rows in one format, as they come.
type encoder interface {
	begin(w io.Writer, sc *arrow.Schema) error
	rows(w io.Writer, rec arrow.RecordBatch) error
	// end closes a complete answer; fail closes one cut short by e.
	end(w io.Writer, m meta, p *pagination) error
	fail(w io.Writer, e errorMessage, m meta)
}

// stream answers rows in the requested format without holding them:
// each batch is written and flushed as it is read. Once the first byte is
// out an error can no longer change the status, so it ends the answer
// with an error record in the answer's format (and the K2-Error trailer).
type stream struct {
	w       http.ResponseWriter
	r       *http.Request
	cols    *columns
	enc     encoder
	started bool
	count   int
}

func newStream(w http.ResponseWriter, r *http.Request, cols *columns, format string) *stream {
	s := &stream{w: w, r: r, cols: cols}
	name := fmt.Sprintf("%s_%s", cols.spec.Table.Name, time.Now().UTC().Format("20060102_150405"))
	h := w.Header()
	switch format {
	case "csv":
		s.enc = &csvEncoder{}
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", "attachment; filename="+name+".csv")
	case "parquet":
		s.enc = &parquetEncoder{}
		h.Set("Content-Type", "application/vnd.apache.parquet")
		h.Set("Content-Disposition", "attachment; filename="+name+".parquet")
	case "arrow":
		s.enc = &arrowEncoder{}
		h.Set("Content-Type", "application/vnd.apache.arrow.stream")
		h.Set("Content-Disposition", "attachment; filename="+name+".arrows")
	case "ndjson":
		s.enc = &ndjsonEncoder{objects{keys: cols.keys}}
		h.Set("Content-Type", "application/x-ndjson")
	default:
		s.enc = &jsonEncoder{objects: objects{keys: cols.keys}}
		h.Set("Content-Type", "application/json")
	}
	h.Set("Trailer", "X-Record-Count, K2-Next-Cursor, K2-Error")
	return s
}

func (s *stream) start() error {
	if s.started {
		return nil
	}
	s.started = true
	s.w.WriteHeader(http.StatusOK)
	return s.enc.begin(s.w, s.cols.schema)
}

// write sends rows (in the table's columns).
func (s *stream) write(rec arrow.RecordBatch) error {
	if err := s.start(); err != nil {
		return err
	}
	if rec == nil || rec.NumRows() == 0 {
		return nil
	}
	out := s.cols.of(rec)
	defer out.Release()
	s.count += int(out.NumRows())
	if err := s.enc.rows(s.w, out); err != nil {
		return err
	}
	http.NewResponseController(s.w).Flush()
	return nil
}

// checkpoint marks where the rows so far end (NDJSON only): a line
// {"cursor":…,"count":…} that continues after them.
func (s *stream) checkpoint(cur string) error {
	if _, ok := s.enc.(*ndjsonEncoder); !ok {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"cursor": cur, "count": s.count})
	if _, err := s.w.Write(append(b, '\n')); err != nil {
		return err
	}
	return http.NewResponseController(s.w).Flush()
}

// finish ends a complete answer.
func (s *stream) finish(m meta, p *pagination) error {
	if err := s.start(); err != nil {
		return err
	}
	m.Count = &s.count
	if err := s.enc.end(s.w, m, p); err != nil {
		return err
	}
	h := s.w.Header()
	h.Set("X-Record-Count", fmt.Sprint(s.count))
	if p != nil && p.NextCursor != "" {
		h.Set("K2-Next-Cursor", p.NextCursor)
	}
	return nil
}

// fail answers an error: in the error shape with its status when nothing
// was sent yet, else as the answer's final record.
func (s *stream) fail(status int, code, message string, details map[string]any) {
	if !s.started {
		for _, h := range []string{"Trailer", "Content-Disposition"} {
			s.w.Header().Del(h)
		}
		writeError(s.w, s.r, status, code, message, details)
		return
	}
	e := errorMessage{Code: code, Message: message, Details: details}
	s.enc.fail(s.w, e, newMeta(s.r))
	b, _ := json.Marshal(e)
	s.w.Header().Set("K2-Error", string(b))
}

// jsonEncoder writes the success envelope with data streamed first and
// meta, pagination and success last, once they are known; an error ends
// it with "success":false and the error.
type jsonEncoder struct {
	objects
	first bool
}

func (e *jsonEncoder) begin(w io.Writer, _ *arrow.Schema) error {
	e.first = true
	_, err := io.WriteString(w, `{"data":[`)
	return err
}

func (e *jsonEncoder) rows(w io.Writer, rec arrow.RecordBatch) error {
	b := e.take()
	for i := range int(rec.NumRows()) {
		if !e.first {
			b = append(b, ',')
		}
		e.first = false
		b = e.appendObject(b, rec, i)
	}
	return e.write(w, b)
}

func (e *jsonEncoder) end(w io.Writer, m meta, p *pagination) error {
	return closeEnvelope(w, envelopeEnd{Meta: m, Pagination: p, Success: true})
}

func (e *jsonEncoder) fail(w io.Writer, er errorMessage, m meta) {
	closeEnvelope(w, envelopeFailed{Error: er, Meta: m})
}

// envelopeEnd and envelopeFailed are what follows an answer's data.
type envelopeEnd struct {
	Meta       meta        `json:"meta"`
	Pagination *pagination `json:"pagination,omitempty"`
	Success    bool        `json:"success"`
}

type envelopeFailed struct {
	Error   errorMessage `json:"error"`
	Meta    meta         `json:"meta"`
	Success bool         `json:"success"`
}

func closeEnvelope(w io.Writer, end any) error {
	b, err := json.Marshal(end)
	if err != nil {
		return err
	}
	b[0] = ','
	_, err = w.Write(append([]byte("]"), b...))
	return err
}

// objects writes rows as JSON objects keyed by column name, the keys
// quoted once with the columns (columns.keys), through buffers shared
// between answers (a latest-100 answer is 40 KB).
type objects struct{ keys [][]byte }

// objectKeys are sc's column names as JSON object keys, each with its
// colon.
func objectKeys(sc *arrow.Schema) [][]byte {
	keys := make([][]byte, sc.NumFields())
	for i := range keys {
		keys[i] = append(appendJSONString(nil, sc.Field(i).Name), ':')
	}
	return keys
}

// appendObject appends row i as a JSON object.
func (o *objects) appendObject(b []byte, rec arrow.RecordBatch, i int) []byte {
	b = append(b, '{')
	for c, key := range o.keys {
		if c > 0 {
			b = append(b, ',')
		}
		b = append(b, key...)
		b = appendJSON(b, rec.Column(c), i)
	}
	return append(b, '}')
}

var objectBuffers = sync.Pool{New: func() any { return new([]byte) }}

// take is an empty buffer from the pool.
func (o *objects) take() []byte { return (*objectBuffers.Get().(*[]byte))[:0] }

// write sends b and returns it to the pool.
func (o *objects) write(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	if cap(b) <= 4<<20 { // a huge one is not kept
		objectBuffers.Put(&b)
	}
	return err
}

// ndjsonEncoder writes one JSON object per line, then a last line with
// meta and pagination (or the error).
type ndjsonEncoder struct{ objects }

func (e *ndjsonEncoder) begin(io.Writer, *arrow.Schema) error { return nil }

func (e *ndjsonEncoder) rows(w io.Writer, rec arrow.RecordBatch) error {
	b := e.take()
	for i := range int(rec.NumRows()) {
		b = e.appendObject(b, rec, i)
		b = append(b, '\n')
	}
	return e.write(w, b)
}

func (e *ndjsonEncoder) end(w io.Writer, m meta, p *pagination) error {
	return json.NewEncoder(w).Encode(map[string]any{"meta": m, "pagination": p, "success": true})
}

func (e *ndjsonEncoder) fail(w io.Writer, er errorMessage, m meta) {
	json.NewEncoder(w).Encode(failure{Error: er, Meta: m})
}

// csvEncoder writes a header row, then rows in the table's column order;
// an error ends it with a line "#error,CODE,message".
type csvEncoder struct{ buf []byte }

func (e *csvEncoder) begin(w io.Writer, sc *arrow.Schema) error {
	e.buf = e.buf[:0]
	for i, f := range sc.Fields() {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendCSVField(e.buf, []byte(f.Name))
	}
	e.buf = append(e.buf, '\r', '\n')
	_, err := w.Write(e.buf)
	return err
}

func (e *csvEncoder) rows(w io.Writer, rec arrow.RecordBatch) error {
	e.buf = e.buf[:0]
	var cell []byte
	for i := range int(rec.NumRows()) {
		for c := range int(rec.NumCols()) {
			if c > 0 {
				e.buf = append(e.buf, ',')
			}
			cell = appendText(cell[:0], rec.Column(c), i)
			e.buf = appendCSVField(e.buf, cell)
		}
		e.buf = append(e.buf, '\r', '\n')
	}
	_, err := w.Write(e.buf)
	return err
}

func (e *csvEncoder) end(io.Writer, meta, *pagination) error { return nil }

func (e *csvEncoder) fail(w io.Writer, er errorMessage, _ meta) {
	b := appendCSVField([]byte("#error,"+er.Code+","), []byte(er.Message))
	w.Write(append(b, '\r', '\n'))
}

// appendCSVField quotes a field when it holds a comma, quote or line
// break (RFC 4180).
func appendCSVField(b, field []byte) []byte {
	quote := false
	for _, c := range field {
		if c == ',' || c == '"' || c == '\n' || c == '\r' {
			quote = true
			break
		}
	}
	if !quote {
		return append(b, field...)
	}
	b = append(b, '"')
	for _, c := range field {
		if c == '"' {
			b = append(b, '"')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

// arrowEncoder writes an Arrow IPC stream; an error leaves it without
// its end-of-stream marker, so a reader sees it cut short.
type arrowEncoder struct{ w *ipc.Writer }

func (e *arrowEncoder) begin(w io.Writer, sc *arrow.Schema) error {
	e.w = ipc.NewWriter(w, ipc.WithSchema(sc))
	return nil
}

func (e *arrowEncoder) rows(_ io.Writer, rec arrow.RecordBatch) error { return e.w.Write(rec) }

func (e *arrowEncoder) end(io.Writer, meta, *pagination) error { return e.w.Close() }

func (e *arrowEncoder) fail(io.Writer, errorMessage, meta) {}

// parquetEncoder writes a Parquet file, a row group per batch; an error
// leaves it without its footer, so no reader takes it for whole.
type parquetEncoder struct{ w *pqarrow.FileWriter }

func (e *parquetEncoder) begin(w io.Writer, sc *arrow.Schema) error {
	var err error
	e.w, err = pqarrow.NewFileWriter(sc, w,
		parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd)),
		pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	return err
}

func (e *parquetEncoder) rows(_ io.Writer, rec arrow.RecordBatch) error { return e.w.Write(rec) }

func (e *parquetEncoder) end(io.Writer, meta, *pagination) error { return e.w.Close() }

func (e *parquetEncoder) fail(io.Writer, errorMessage, meta) {}
