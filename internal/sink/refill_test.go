package sink

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/lake/laketest"
)

// largestFile is the trades table's data file with the most rows.
func (e *env) largestFile(t *testing.T) (string, int64) {
	t.Helper()
	tbl, err := e.lake.Load(context.Background(), "trades")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan(table.WithSelectedFields("trade_id")).PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var path string
	var rows int64
	for _, task := range tasks {
		if task.File.Count() > rows {
			path, rows = task.File.FilePath(), task.File.Count()
		}
	}
	return strings.TrimPrefix(path, "file://"), rows
}

// A torn data file is dropped and exactly its rows are stored again from
// Kafka; the table's offsets do not move; a second repair finds nothing to
// drop; a file whose records Kafka no longer holds is reported incomplete.
func TestRefillStoresExactlyTheDroppedFilesRows(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.produceTrades(t, 0, 6_000)
	s := e.startSink(t, Config{Sink: config.Sink{BatchRows: 1_000}})
	waitFor(t, "every record", func() bool { return s.Stats().Written == 6_000 })
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	path, rows := e.largestFile(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	before := e.tableOffsets(t, "trades")

	dropped, err := e.lake.DropDataFile(ctx, "trades", path)
	if err != nil {
		t.Fatal(err)
	}
	if dropped.Records != rows || dropped.MinSymbol != dropped.MaxSymbol || dropped.MinTime == 0 || dropped.MaxTime < dropped.MinTime {
		t.Fatalf("dropped %+v: want its %d rows, one symbol and its time range", dropped, rows)
	}
	if got := laketest.Keys(t, e.lake, "trades", "symbol", "trade_id"); len(got) != 6_000-int(rows) {
		t.Fatalf("%d rows after the drop, want %d", len(got), 6_000-rows)
	}
	cfg := RefillConfig{Brokers: e.brokers, TopicPrefix: e.prefix, Registry: e.reg, Lake: e.lake}
	res, err := Refill(ctx, cfg, "trades", dropped)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != rows || !res.Complete() || res.Read != 6_000 || len(res.Gone) != 0 {
		t.Fatalf("refill %+v: want the file's %d rows stored again, all 6,000 records read", res, rows)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "symbol", "trade_id"), 6_000)
	if after := e.tableOffsets(t, "trades"); !equalOffsets(before, after) {
		t.Fatalf("the table's offsets moved: %v, then %v", before, after)
	}
	e.checkOffsetsAtEnd(t, "trades", binanceTrades)
	if _, err := e.lake.DropDataFile(ctx, "trades", path); !errors.Is(err, lake.ErrNoDataFile) {
		t.Fatalf("dropping it again: %v, want ErrNoDataFile", err)
	}
	// Found again among the dropped files: a repair run a second time
	// stores nothing more.
	again, err := e.lake.DroppedDataFile(ctx, "trades", path)
	if err != nil || again.Path != dropped.Path || again.Records != dropped.Records || again.MinTime != dropped.MinTime ||
		again.MaxTime != dropped.MaxTime || again.MinSymbol != dropped.MinSymbol || !equalOffsets(again.Offsets, before) {
		t.Fatalf("the dropped file found again: %+v (%v), want %+v", again, err, dropped)
	}
	if res, err := Refill(ctx, cfg, "trades", again); err != nil || res.Stored != 0 || res.Matched != rows {
		t.Fatalf("refill again: %+v (%v): want the file's %d rows found and none stored twice", res, err, rows)
	}
	checkOnce(t, laketest.Keys(t, e.lake, "trades", "symbol", "trade_id"), 6_000)

	// Kafka no longer holds the records (retention, --broker-keep).
	del := kadm.Offsets{}
	for p, end := range e.endOffsets(t, e.prefix+binanceTrades) {
		del.Add(kadm.Offset{Topic: e.prefix + binanceTrades, Partition: p, At: end})
	}
	if _, err := e.adm.DeleteRecords(ctx, del); err != nil {
		t.Fatal(err)
	}
	path, rows = e.largestFile(t)
	if dropped, err = e.lake.DropDataFile(ctx, "trades", "file://"+path); err != nil {
		t.Fatal(err)
	}
	res, err = Refill(ctx, cfg, "trades", dropped)
	if err != nil {
		t.Fatal(err)
	}
	if res.Complete() || res.Stored != 0 || res.Records != rows || len(res.Gone) == 0 {
		t.Fatalf("refill %+v: want nothing stored, the file's %d rows reported missing and the partitions named", res, rows)
	}
}

func equalOffsets(a, b lake.Offsets) bool {
	if len(a) != len(b) {
		return false
	}
	for t, ps := range a {
		for p, off := range ps {
			if got, ok := b.Get(t, p); !ok || got != off {
				return false
			}
		}
	}
	return true
}
