package loader_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/exchanges"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
	"github.com/k2-market-data/k2/internal/loader"
	"github.com/k2-market-data/k2/internal/testutil"
)

// The tables as the summary names them, and as the lake opens them.
const (
	tradesTable = "market_data.trades"
	quotesTable = "market_data.quotes"
	refTable    = "market_data.reference_data"
)

// format is one of the file formats `k2 load` reads.
func format(t testing.TB, name string) *feed.Format {
	t.Helper()
	for _, f := range exchanges.Formats() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no format %s", name)
	return nil
}

// run loads paths in the named format with ld and finishes it, as `k2
// load` does: Finish runs also after a failed Load. It returns the summary
// and Load's error; an error of Finish fails the test.
func run(t *testing.T, ld *loader.Loader, name string, paths ...string) (loader.Summary, error) {
	t.Helper()
	ctx := context.Background()
	var loadErr error
	for _, p := range paths {
		if loadErr = ld.Load(ctx, format(t, name), p); loadErr != nil {
			break
		}
	}
	sum, err := ld.Finish(ctx)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	return sum, loadErr
}

// loadInto loads paths into l directly; see run.
func loadInto(t *testing.T, l *lake.Lake, opts loader.Options, name string, paths ...string) (loader.Summary, error) {
	t.Helper()
	ld, err := loader.New(l, opts)
	if err != nil {
		t.Fatal(err)
	}
	return run(t, ld, name, paths...)
}

// mustLoad is loadInto for input that must load.
func mustLoad(t *testing.T, l *lake.Lake, opts loader.Options, name string, paths ...string) loader.Summary {
	t.Helper()
	sum, err := loadInto(t, l, opts, name, paths...)
	if err != nil {
		t.Fatalf("load %s %v: %v", name, paths, err)
	}
	return sum
}

// lines returns the non-empty lines of a file, plain or gzip, without CR.
func lines(t testing.TB, path string) []string {
	t.Helper()
	var out []string
	testutil.ForLines(t, path, func(_ int, line []byte) {
		if s := strings.TrimRight(string(line), "\r"); s != "" {
			out = append(out, s)
		}
	})
	return out
}

// short is a table's name in the lake (trades) from its full name.
func short(full string) string { return strings.TrimPrefix(full, lake.Namespace+".") }

// bySymbol counts a table's stored rows by symbol.
func bySymbol(t *testing.T, l *lake.Lake, name string) map[string]int {
	t.Helper()
	return laketest.Keys(t, l, short(name), "symbol")
}

// snapshots returns a table's snapshots, oldest first.
func snapshots(t *testing.T, l *lake.Lake, name string) []snapshot {
	t.Helper()
	tbl, err := l.Load(context.Background(), short(name))
	if err != nil {
		t.Fatal(err)
	}
	var out []snapshot
	for _, s := range tbl.Metadata().Snapshots() {
		sn := snapshot{id: s.SnapshotID}
		if s.Summary != nil {
			sn.props = s.Summary.Properties
			sn.added, _ = strconv.Atoi(s.Summary.Properties["added-records"])
		}
		out = append(out, sn)
	}
	return out
}

type snapshot struct {
	id    int64
	added int // rows the snapshot added
	props map[string]string
}

// added lists how many rows each snapshot of a table added.
func added(t *testing.T, l *lake.Lake, name string) []int {
	t.Helper()
	var out []int
	for _, s := range snapshots(t, l, name) {
		out = append(out, s.added)
	}
	return out
}

// asxColumns are the columns checked against the files, after the id.
var asxColumns = map[string][]string{
	"trades": {"timestamp", "price", "quantity"},
	"quotes": {"timestamp", "bid_price", "bid_quantity", "ask_price", "ask_quantity"},
}

// aedt is Sydney's offset during the sample (10–14 March 2014).
var aedt = time.FixedZone("AEDT", 11*3600)

// asxInput is what an ASX directory holds, read independently of the parser.
type asxInput struct {
	companies map[string]string              // company id → symbol
	symbols   map[string]map[string]int      // trades, quotes → symbol → rows
	rows      map[string]map[string][]string // trades, quotes → id → asxColumns
}

func (in asxInput) total(kind string) (n int) {
	for _, c := range in.symbols[kind] {
		n += c
	}
	return n
}

// readASX reads an ASX directory: the company list, and for every row of
// every file the id it must get, ASX-{SYMBOL}-{YYYYMMDD}-{n-th row of that
// local date}, with its UTC time in µs and its prices and sizes (an empty
// quote side, price 0, is null).
func readASX(t *testing.T, dir string) asxInput {
	t.Helper()
	in := asxInput{companies: map[string]string{},
		symbols: map[string]map[string]int{"trades": {}, "quotes": {}},
		rows:    map[string]map[string][]string{"trades": {}, "quotes": {}}}
	for i, line := range lines(t, filepath.Join(dir, "reference-data", "company_info.csv")) {
		if i > 0 {
			f := strings.Split(line, ",")
			in.companies[f[0]] = f[1]
		}
	}
	for _, kind := range []string{"trades", "quotes"} {
		paths, _ := filepath.Glob(filepath.Join(dir, kind, "*.csv"))
		for _, p := range paths {
			sym := in.companies[strings.TrimSuffix(filepath.Base(p), ".csv")]
			perDay := map[string]int{}
			for _, line := range lines(t, p) {
				f := strings.Split(line, ",")
				ts, err := time.ParseInLocation("01/02/2006 15:04:05.000", f[0]+" "+f[1], aedt)
				if err != nil {
					t.Fatalf("%s: %q: %v", p, line, err)
				}
				day := ts.Format("20060102")
				perDay[day]++
				in.symbols[kind][sym]++
				row := []string{strconv.FormatInt(ts.UnixMicro(), 10)}
				if kind == "trades" {
					row = append(row, number(f[2]), number(f[3]))
				} else {
					row = append(row, side(f[2], f[4])...)
					row = append(row, side(f[3], f[5])...)
				}
				in.rows[kind][fmt.Sprintf("ASX-%s-%s-%d", sym, day, perDay[day])] = row
			}
		}
	}
	return in
}

// side is one side of an ASX quote as stored: price 0 is an empty side.
func side(price, size string) []string {
	if number(price) == "0" {
		return []string{"null", "null"}
	}
	return []string{number(price), number(size)}
}

// number is a decimal's exact value in one spelling (36.6670 and 36.667
// are both 36667/1000).
func number(text string) string {
	r, ok := new(big.Rat).SetString(strings.TrimSpace(text))
	if !ok {
		return "not a number: " + text
	}
	return r.RatString()
}

// values reads a table's rows by a string key column: each row's columns
// as number gives them (timestamps in µs, null as "null"). A key stored
// twice fails the test.
func values(t *testing.T, l *lake.Lake, name, key string, columns ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	laketest.Scan(t, l, short(name), append([]string{key}, columns...), func(rec arrow.RecordBatch) {
		ids := laketest.Column(t, rec, key).(*array.String)
		for r := 0; r < int(rec.NumRows()); r++ {
			var row []string
			for _, c := range columns {
				row = append(row, cell(laketest.Column(t, rec, c), r))
			}
			id := ids.Value(r)
			if _, dup := out[id]; dup {
				t.Fatalf("%s: %s stored twice", name, id)
			}
			out[id] = row
		}
	})
	return out
}

func cell(a arrow.Array, i int) string {
	switch {
	case a.IsNull(i):
		return "null"
	case a.DataType().ID() == arrow.TIMESTAMP:
		return strconv.FormatInt(int64(a.(*array.Timestamp).Value(i)), 10)
	case a.DataType().ID() == arrow.DECIMAL128:
		scale := big.NewInt(int64(a.DataType().(*arrow.Decimal128Type).Scale))
		units := a.(*array.Decimal128).Value(i).BigInt()
		return new(big.Rat).SetFrac(units, scale.Exp(big.NewInt(10), scale, nil)).RatString()
	}
	return a.ValueStr(i)
}

// sameRows fails the test unless got and want hold the same ids with the
// same values, naming a few that differ.
func sameRows(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	var diff []string
	for id, w := range want {
		if g, ok := got[id]; !slices.Equal(g, w) {
			diff = append(diff, fmt.Sprintf("%s: %v (stored %t), want %v", id, g, ok, w))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			diff = append(diff, fmt.Sprintf("%s: %v not in the input", id, g))
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		t.Fatalf("%s: %d stored, %d in the input, %d differ, e.g.\n%s", what, len(got), len(want), len(diff), strings.Join(diff[:min(5, len(diff))], "\n"))
	}
}

// rowsOf reads the rows of an ASX kind (trades, quotes) by id.
func rowsOf(t *testing.T, l *lake.Lake, kind string) map[string][]string {
	t.Helper()
	return values(t, l, lake.Namespace+"."+kind, strings.TrimSuffix(kind, "s")+"_id", asxColumns[kind]...)
}

// copyASX copies the company list and the named trade and quote files of
// the shared ASX sample to DIR/asx and returns that directory.
func copyASX(t *testing.T, files ...string) string {
	t.Helper()
	src := testutil.Data(t, "asx")
	dir := filepath.Join(t.TempDir(), "asx")
	for _, rel := range append([]string{"reference-data/company_info.csv"}, files...) {
		b := readFile(t, filepath.Join(src, rel))
		writeFile(t, filepath.Join(dir, rel), b)
	}
	return dir
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceLine replaces line n (1-based) of a CRLF file and returns the
// line it held, without CRLF.
func replaceLine(t *testing.T, path string, n int, with string) string {
	t.Helper()
	b := readFile(t, path)
	ls := bytes.SplitAfter(b, []byte("\r\n"))
	old := strings.TrimRight(string(ls[n-1]), "\r\n")
	ls[n-1] = []byte(with + "\r\n")
	writeFile(t, path, bytes.Join(ls, nil))
	return old
}

// deadLetters reads a dead-letter file as a script would: one JSON object
// a line with exactly the documented keys.
func deadLetters(t *testing.T, path string) []loader.Rejection {
	t.Helper()
	var out []loader.Rejection
	for i, line := range lines(t, path) {
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("dead-letter line %d is not JSON: %v: %s", i+1, err, line)
		}
		want := []string{"at", "error", "file", "line", "raw", "reason"}
		if _, ok := fields["raw_base64"]; ok { // the exact bytes of a line that is not UTF-8
			want = []string{"at", "error", "file", "line", "raw", "raw_base64", "reason"}
		}
		if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, want) {
			t.Fatalf("dead-letter line %d has keys %v", i+1, got)
		}
		var r loader.Rejection
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// batched is options that close a batch at rows rows or age (0: the
// default). The fields are set, not written in a literal, so that the
// test does not depend on how Options groups them.
func batched(rows int, age time.Duration) loader.Options {
	var o loader.Options
	o.BatchRows, o.BatchAge = rows, age
	return o
}

// tables lists a summary's rows per table, leaving out tables with none.
func tables(s loader.Summary) map[string]int64 {
	out := map[string]int64{}
	for k, v := range s.Tables {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

func TestASXDirectoryLoadsEveryRowOnceAndASecondLoadAddsNothing(t *testing.T) {
	t.Parallel()
	dir := testutil.Data(t, "asx")
	in := readASX(t, dir)
	if in.symbols["trades"]["BHP"] != 91_631 || in.symbols["quotes"]["BHP"] != 77_849 || len(in.companies) != 4 {
		t.Fatalf("the shared ASX sample changed: %d companies, BHP %v", len(in.companies), in.symbols)
	}
	l := laketest.Open(t)
	dlq := filepath.Join(t.TempDir(), "dead-letter.jsonl")
	opts := loader.Options{Source: "asx:test", DeadLetter: dlq}
	sum := mustLoad(t, l, opts, "asx", dir)

	nTrades, nQuotes := in.total("trades"), in.total("quotes")
	total := int64(len(in.companies) + nTrades + nQuotes)
	wantTables := map[string]int64{tradesTable: int64(nTrades), quotesTable: int64(nQuotes), refTable: int64(len(in.companies))}
	if sum.Source != "asx:test" || sum.Read != total || sum.Written != total || sum.Duplicates != 0 || sum.Rejected != 0 ||
		sum.Skipped != 0 || sum.Commits != 3 || !maps.Equal(sum.Tables, wantTables) {
		t.Fatalf("summary %+v, want %d read and written in 3 commits, tables %v", sum, total, wantTables)
	}
	// Nothing was rejected: no dead-letter file, and the summary names none.
	if _, err := os.Stat(dlq); !os.IsNotExist(err) || sum.DeadLetter != "" {
		t.Fatalf("dead-letter file %q after a clean load: %v", sum.DeadLetter, err)
	}
	if sum.Elapsed <= 0 || sum.RowsPerSecond() <= 0 {
		t.Fatalf("elapsed %v, %f rows/s", sum.Elapsed, sum.RowsPerSecond())
	}

	// Every row is stored once, under the id its place in its file gives
	// it, with the file's time, prices and sizes exactly.
	for _, kind := range []string{"trades", "quotes"} {
		if got := bySymbol(t, l, lake.Namespace+"."+kind); !maps.Equal(got, in.symbols[kind]) {
			t.Fatalf("%s by symbol %v, want %v", kind, got, in.symbols[kind])
		}
		sameRows(t, kind, rowsOf(t, l, kind), in.rows[kind])
	}
	companies := map[string]int{}
	for id, sym := range in.companies {
		companies[id+"/"+sym] = 1
	}
	if got := laketest.Keys(t, l, short(refTable), "company_id", "symbol"); !maps.Equal(got, companies) {
		t.Fatalf("reference data %v, want %v", got, companies)
	}

	// One snapshot a table, saying who wrote it.
	before := map[string]int64{}
	for name, n := range wantTables {
		s := snapshots(t, l, name)
		if len(s) != 1 || s[0].added != int(n) || s[0].props["k2.source"] != "asx:test" || s[0].props["k2.writer"] != "k2 load" {
			t.Fatalf("%s snapshots %+v, want one adding %d rows from source asx:test", name, s, n)
		}
		before[name] = s[0].id
	}

	// The same directory again: every row is a duplicate, nothing is
	// written and no snapshot is made.
	again := mustLoad(t, l, opts, "asx", dir)
	if again.Read != total || again.Written != 0 || again.Duplicates != total || again.Commits != 0 ||
		again.Rejected != 0 || len(tables(again)) != 0 {
		t.Fatalf("second load %+v, want %d read, all duplicates, nothing written", again, total)
	}
	for name, id := range before {
		if s := snapshots(t, l, name); len(s) != 1 || s[0].id != id {
			t.Fatalf("%s snapshots after the second load %+v, want only %d", name, s, id)
		}
	}
	if n := laketest.Rows(t, l, "trades"); n != int64(nTrades) {
		t.Fatalf("%d trades after the second load, want %d", n, nTrades)
	}
}

// TestDamagedLinesAreDeadLetteredAndTheRestLoads: each bad line lands in
// the dead-letter file with its file, line, reason and text; the other
// rows keep the ids and values a clean file gives them, so the corrected
// file adds exactly the line that was rejected.
func TestDamagedLinesAreDeadLetteredAndTheRestLoads(t *testing.T) {
	t.Parallel()
	dir := copyASX(t, "trades/3153.csv", "trades/7181.csv", "quotes/3153.csv")
	clean := readASX(t, dir)
	price := filepath.Join(dir, "trades", "7181.csv")
	// DVN's 5th trade: 03/10/2014,11:29:15.863,0.675,120,0,,
	badPrice := "03/10/2014,11:29:15.863,0.6x5,120,0,,"
	goodPrice := replaceLine(t, price, 5, badPrice)
	// DVN's first trade of 11 March and one in the middle of 12 March get
	// dates that do not parse: the rows after them keep their ids.
	badOpen := "2014-03-11,11:55:16.833,0.69,9000,0,,"
	goodOpen := replaceLine(t, price, 20, badOpen)
	badMid := "03-12-2014,11:19:28.318,0.66,103,0,,"
	goodMid := replaceLine(t, price, 70, badMid)
	// MWR's 2nd quote gets a bid size without a bid price.
	badQuote := "03/10/2014,05:46:13.604,0,1.18,10300,3667"
	replaceLine(t, filepath.Join(dir, "quotes", "3153.csv"), 2, badQuote)
	// MWR's 3rd trade gets a qualifier that is not a condition code.
	badCode := "03/10/2014,13:55:41.879,1.11,3000,X,,"
	replaceLine(t, filepath.Join(dir, "trades", "3153.csv"), 3, badCode)

	l := laketest.Open(t)
	dlq := filepath.Join(t.TempDir(), "dlq", "load.jsonl") // its folder is made
	opts := loader.Options{Source: "asx:damaged", DeadLetter: dlq}
	start := time.Now().UTC()
	sum := mustLoad(t, l, opts, "asx", dir)

	want := []loader.Rejection{
		{File: "asx/trades/3153.csv", Line: 3, Reason: "invalid_trade_conditions", Raw: badCode},
		{File: "asx/trades/7181.csv", Line: 5, Reason: "invalid_price", Raw: badPrice},
		{File: "asx/trades/7181.csv", Line: 20, Reason: "invalid_timestamp", Raw: badOpen},
		{File: "asx/trades/7181.csv", Line: 70, Reason: "invalid_timestamp", Raw: badMid},
		{File: "asx/quotes/3153.csv", Line: 2, Reason: "invalid_bid_price", Raw: badQuote},
	}
	got := deadLetters(t, dlq)
	if len(got) != len(want) {
		t.Fatalf("dead letters %+v, want %d", got, len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.File != w.File || r.Line != w.Line || r.Reason != w.Reason || r.Raw != w.Raw ||
			!strings.HasPrefix(r.Error, strings.TrimPrefix(w.Reason, "invalid_")+": ") || r.At.Before(start) || r.At.After(time.Now()) {
			t.Errorf("dead letter %d: %+v, want %+v", i+1, r, w)
		}
	}
	nTrades, nQuotes := clean.total("trades")-4, clean.total("quotes")-1
	rows := int64(len(clean.companies) + nTrades + nQuotes)
	if sum.Rejected != 5 || sum.DeadLetter != dlq || sum.Read != rows || sum.Written != rows ||
		sum.Tables[tradesTable] != int64(nTrades) || sum.Tables[quotesTable] != int64(nQuotes) {
		t.Fatalf("summary %+v, want 5 rejected and %d rows written", sum, rows)
	}
	// The other rows are stored as in the clean file: the rejected lines'
	// ids are the only ones missing.
	without := func(kind string, ids ...string) map[string][]string {
		m := maps.Clone(clean.rows[kind])
		for _, id := range ids {
			delete(m, id)
		}
		return m
	}
	sameRows(t, "trades", rowsOf(t, l, "trades"), without("trades", "ASX-MWR-20140310-3", "ASX-DVN-20140310-5", "ASX-DVN-20140311-1", "ASX-DVN-20140312-8"))
	sameRows(t, "quotes", rowsOf(t, l, "quotes"), without("quotes", "ASX-MWR-20140310-2"))

	// Corrected, the price line loads under its own id and nothing else is
	// written again; the two lines still bad are appended to the same file.
	replaceLine(t, price, 5, goodPrice)
	replaceLine(t, price, 20, goodOpen)
	replaceLine(t, price, 70, goodMid)
	fixed := mustLoad(t, l, opts, "asx", dir)
	if fixed.Written != 3 || fixed.Tables[tradesTable] != 3 || fixed.Duplicates != rows || fixed.Rejected != 2 || fixed.Commits != 1 {
		t.Fatalf("corrected load %+v, want the three corrected rows written", fixed)
	}
	sameRows(t, "trades", rowsOf(t, l, "trades"), without("trades", "ASX-MWR-20140310-3"))
	if got := deadLetters(t, dlq); len(got) != 7 || got[5].Raw != badCode || got[6].Raw != badQuote {
		t.Fatalf("dead-letter file after the second load: %+v", got)
	}
}

func TestRejectionWithoutADeadLetterFileStopsTheLoad(t *testing.T) {
	t.Parallel()
	dir := copyASX(t, "trades/3153.csv")
	replaceLine(t, filepath.Join(dir, "trades", "3153.csv"), 4, "03/10/2014,13:55:41.879,-1.11,3000,0,,")
	_, err := loadInto(t, laketest.Open(t), loader.Options{}, "asx", dir)
	if err == nil || !strings.HasPrefix(err.Error(), "asx/trades/3153.csv:4: price: ") ||
		!strings.HasSuffix(err.Error(), "(and no dead-letter file is configured)") {
		t.Fatalf("load with a bad line and no dead-letter file: %v", err)
	}
}

// TestBatchRowsGivesOneSnapshotPerBatch: a batch is committed as soon as it
// holds BatchRows rows, and the rest at Finish; each commit is a snapshot.
func TestBatchRowsGivesOneSnapshotPerBatch(t *testing.T) {
	t.Parallel()
	dir := copyASX(t, "trades/3153.csv", "trades/7181.csv", "quotes/3153.csv", "quotes/7181.csv")
	in := readASX(t, dir)
	const batch = 100
	l := laketest.Open(t)
	sum := mustLoad(t, l, batched(batch, time.Hour), "asx", dir)
	// Rows in batches of 100 across the files of a kind, the rest at the end.
	split := func(n int) []int {
		var out []int
		for ; n > batch; n -= batch {
			out = append(out, batch)
		}
		return append(out, n)
	}
	want := map[string][]int{
		tradesTable: split(in.total("trades")),
		quotesTable: split(in.total("quotes")),
		refTable:    {len(in.companies)},
	}
	commits := 0
	for name, w := range want {
		if got := added(t, l, name); !slices.Equal(got, w) {
			t.Errorf("%s snapshots added %v rows, want %v", name, got, w)
		}
		commits += len(w)
	}
	if sum.Commits != commits || sum.Written != int64(len(in.companies)+in.total("trades")+in.total("quotes")) {
		t.Fatalf("summary %+v, want %d commits", sum, commits)
	}
}

// TestBatchAgeCommitsAnOldBatch: with a batch age shorter than the time
// between two rows, every row is committed on its own.
func TestBatchAgeCommitsAnOldBatch(t *testing.T) {
	t.Parallel()
	dir := copyASX(t, "trades/3153.csv")
	in := readASX(t, dir)
	l := laketest.Open(t)
	sum := mustLoad(t, l, batched(0, time.Nanosecond), "asx", dir)
	ones := func(n int) []int { return slices.Repeat([]int{1}, n) }
	for name, n := range map[string]int{tradesTable: in.total("trades"), refTable: len(in.companies)} {
		if got := added(t, l, name); !slices.Equal(got, ones(n)) {
			t.Fatalf("%s snapshots added %v rows, want %d of 1", name, got, n)
		}
	}
	if n := in.total("trades") + len(in.companies); sum.Commits != n || sum.Written != int64(n) {
		t.Fatalf("summary %+v, want %d commits of one row", sum, n)
	}
}

// Bytes that are not UTF-8 are refused before any parser sees them: a
// trade line goes to the dead-letter file with its exact bytes, and a
// company whose symbol is not UTF-8 (R\xffO would have become a symbol
// "R\uFFFDO" beside RIO) stops the load with nothing stored.
func TestTextThatIsNotUTF8IsRefused(t *testing.T) {
	t.Parallel()
	dir := copyASX(t, "trades/7181.csv")
	bad := "03/10/2014,11:29:15.863,0.675,120,0,X\xff,"
	replaceLine(t, filepath.Join(dir, "trades", "7181.csv"), 5, bad)
	l := laketest.Open(t)
	dlq := filepath.Join(t.TempDir(), "dlq.jsonl")
	sum := mustLoad(t, l, loader.Options{Source: "asx:utf8", DeadLetter: dlq}, "asx", dir)
	got := deadLetters(t, dlq)
	if sum.Rejected != 1 || len(got) != 1 || got[0].Reason != "invalid_utf8" || got[0].Line != 5 ||
		got[0].Error != "the line is not UTF-8: byte 38 is 0xff" {
		t.Fatalf("summary %+v, dead letters %+v", sum, got)
	}
	if raw, err := base64.StdEncoding.DecodeString(got[0].RawBase64); err != nil || string(raw) != bad {
		t.Fatalf("raw_base64 %q holds %q, want the line's bytes", got[0].RawBase64, raw)
	}

	// MWR's company row is not UTF-8: it and every line of MWR's files
	// are dead-lettered; the other companies load.
	dir = copyASX(t, "trades/3153.csv", "quotes/3153.csv", "trades/7181.csv")
	info := filepath.Join(dir, "reference-data", "company_info.csv")
	writeFile(t, info, bytes.Replace(readFile(t, info), []byte("3153,MWR,"), []byte("3153,M\xffWR,"), 1))
	mwr := len(lines(t, filepath.Join(dir, "trades", "3153.csv"))) + len(lines(t, filepath.Join(dir, "quotes", "3153.csv")))
	l = laketest.Open(t)
	dlq = filepath.Join(t.TempDir(), "dlq.jsonl")
	sum = mustLoad(t, l, loader.Options{DeadLetter: dlq}, "asx", dir)
	got = deadLetters(t, dlq)
	if sum.Rejected != int64(1+mwr) || len(got) != 1+mwr {
		t.Fatalf("summary %+v, %d dead letters; want the company row and MWR's %d lines", sum, len(got), mwr)
	}
	if got[0].File != "reference-data/company_info.csv" || got[0].Line != 2 || got[0].Reason != "invalid_utf8" || got[0].RawBase64 == "" {
		t.Fatalf("company row dead letter %+v", got[0])
	}
	for _, r := range got[1:] {
		if r.Reason != "invalid_symbol" || !strings.Contains(r.Error, "company 3153 was refused") || !strings.Contains(r.File, "3153.csv") {
			t.Fatalf("dead letter %+v", r)
		}
	}
	if n := laketest.Rows(t, l, "reference_data"); n != 3 {
		t.Fatalf("%d companies stored, want the other 3", n)
	}
	if syms := bySymbol(t, l, "trades"); syms["MWR"] != 0 || syms["M\uFFFDWR"] != 0 || syms["DVN"] == 0 {
		t.Fatalf("trades by symbol %v", syms)
	}
}

// TestBadInputFailsClearlyAndStoresNothing: a path that cannot be loaded
// is one error naming it, never a panic, and nothing reaches the lake.
func TestBadInputFailsClearlyAndStoresNothing(t *testing.T) {
	t.Parallel()
	data := testutil.Data(t)
	tmp := t.TempDir()

	unknown := copyASX(t, "trades/3153.csv")
	writeFile(t, filepath.Join(unknown, "trades", "9999.csv"), []byte("03/10/2014,10:13:34.553,0.67,8216,0,,\r\n"))
	empty := copyASX(t)
	truncated := filepath.Join(tmp, "truncated.gz")
	whole := readFile(t, filepath.Join(data, "binance", "ws", "spot_btcusdt_20240808.gz"))
	writeFile(t, truncated, whole[:len(whole)/100])
	notGzip := filepath.Join(tmp, "not.gz")
	writeFile(t, notGzip, []byte{0x1f, 0x8b, 'n', 'o', 't', ' ', 'g', 'z', 'i', 'p'})
	unnamed := filepath.Join(tmp, "trades.csv")
	writeFile(t, unnamed, []byte("4359935386,93576.00000000,0.00136000,127.26336000,1735689600010866,True,True\n"))

	for _, c := range []struct {
		name, format, path string
		symbol             string
		want               []string // parts of the error, in order
		partial            bool     // rows read before the failure are kept
	}{
		{name: "missing ASX directory", format: "asx", path: filepath.Join(tmp, "nowhere"),
			want: []string{"ASX directory " + filepath.Join(tmp, "nowhere"), "company_info.csv", "no such file or directory"}},
		{name: "unknown company id", format: "asx", path: unknown,
			want: []string{filepath.Join(unknown, "trades", "9999.csv") + ": company id 9999 is not in ", "company_info.csv: unknown symbol"}},
		{name: "ASX directory without ticks", format: "asx", path: empty,
			want: []string{"ASX directory " + empty + " has no trades/*.csv or quotes/*.csv"}},
		{name: "missing capture", format: "binance-ws", path: filepath.Join(tmp, "missing.gz"),
			want: []string{filepath.Join(tmp, "missing.gz"), "no such file or directory"}},
		{name: "directory for a file", format: "binance-ws", path: tmp,
			want: []string{tmp + " is a directory, not a file"}},
		{name: "directory for a Kraken file", format: "kraken-ws", path: tmp,
			want: []string{tmp + " is a directory, not a file"}},
		{name: "gzip magic without gzip", format: "binance-ws", path: notGzip,
			want: []string{notGzip + ": gzip: "}},
		{name: "truncated gzip", format: "binance-ws", path: truncated,
			want: []string{truncated + ":", "unexpected EOF"}, partial: true},
		{name: "public-data file without a symbol", format: "binance-csv", path: unnamed,
			want: []string{unnamed + ": --symbol is required"}},
		{name: "unknown symbol", format: "binance-csv", path: unnamed, symbol: "bitcoin",
			want: []string{"unknown symbol BITCOIN: ", "no known quote asset"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := laketest.Open(t)
			sum, err := loadInto(t, l, loader.Options{Symbol: c.symbol, DeadLetter: filepath.Join(t.TempDir(), "dlq.jsonl")}, c.format, c.path)
			if err == nil {
				t.Fatalf("loaded: %+v", sum)
			}
			rest := err.Error()
			for _, w := range c.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q does not say %q", err, w)
				}
				rest = rest[i+len(w):]
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error on more than one line: %q", err)
			}
			if c.partial {
				return
			}
			for _, name := range []string{tradesTable, quotesTable, refTable} {
				if s := snapshots(t, l, name); len(s) != 0 {
					t.Fatalf("%s has %d snapshots", name, len(s))
				}
			}
			if sum.Read != 0 || sum.Written != 0 || sum.Commits != 0 {
				t.Fatalf("summary %+v", sum)
			}
		})
	}
}

// TestCancelledLoadStopsReading: a cancelled load (Ctrl-C) stops within
// a few thousand lines and says why.
func TestCancelledLoadStopsReading(t *testing.T) {
	t.Parallel()
	path := testutil.Data(t, "binance", "ws", "spot_btcusdt_20240808.gz")
	ld, err := loader.New(laketest.Open(t), loader.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = ld.Load(ctx, format(t, "binance-ws"), path)
	sum, finErr := ld.Finish(context.Background())
	if !errors.Is(err, context.Canceled) || finErr != nil || sum.Read+sum.Skipped >= 4096 {
		t.Fatalf("cancelled load: %v, finish %v, %+v", err, finErr, sum)
	}
}
