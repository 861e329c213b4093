package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/config"
	"github.com/k2-market-data/k2/internal/feed/synth"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/testsvc"
)

// The freshness figure is only as good as the watcher's count: it must see
// every committed trade exactly once, across several commits.
func TestWatcherSeesEveryCommittedTradeOnce(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	w, err := record.Trade.Writer(l)
	if err != nil {
		t.Fatal(err)
	}
	g := synth.New(synth.Config{Seed: 1, Rate: 1000})
	watch := &watcher{lake: l, seen: map[string]bool{}}
	for range 3 {
		if _, err := w.Commit(ctx, g.Trades(nil, 1000), nil); err != nil {
			t.Fatal(err)
		}
		if err := watch.check(ctx); err != nil {
			t.Fatal(err)
		}
		if err := watch.check(ctx); err != nil { // no new snapshot: nothing added
			t.Fatal(err)
		}
	}
	if len(watch.fresh) != 3000 {
		t.Fatalf("watcher saw %d of 3000 trades", len(watch.fresh))
	}
}

// Against Apache Kafka (the test services' broker), the benchmark commits
// every trade of each run exactly once, names the broker it measured, and
// keeps the run's topics only when asked to.
func TestIngestAgainstAnExternalKafka(t *testing.T) {
	brokers := testsvc.Kafka(t)
	ctx := context.Background()
	dir := t.TempDir()
	k := config.Default().Kafka
	k.Brokers, k.Registry, k.TopicPrefix = brokers, "", testsvc.KafkaTopicPrefix(t)
	traces := filepath.Join(t.TempDir(), "ingest.trace")
	o := IngestOptions{Trades: 20_000, BatchRows: 6_000, FreshRate: 5_000, FreshFor: time.Second, Dir: dir, Keep: true, Kafka: &k, Trace: traces}
	rep, err := RunIngest(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range []string{"drain", "pipeline"} {
		// An execution trace opens with its format's header.
		if b, err := os.ReadFile(traces + "." + run); err != nil || !bytes.HasPrefix(b, []byte("go 1.")) || len(b) < 4096 {
			t.Errorf("--trace: %s run: %d bytes, %v; want a Go execution trace", run, len(b), err)
		}
	}
	if want := "Apache Kafka 4."; !strings.Contains(rep.Options, want) || !strings.Contains(rep.Options, brokers) {
		t.Errorf("the report does not name %s… at %s: %q", want, brokers, rep.Options)
	}
	var kept cluster
	if _, p, ok := strings.Cut(rep.Options, "topics "); ok {
		kept.prefix, _, _ = strings.Cut(p, "*")
	}
	if !strings.HasPrefix(kept.prefix, o.Kafka.TopicPrefix+"k2-bench-") {
		t.Fatalf("the report names no topics of the run under %s: %q", o.Kafka.TopicPrefix, rep.Options)
	}
	for _, r := range rep.Results {
		if strings.HasPrefix(r.Name, "peak memory") && !strings.Contains(r.Detail, "broker's own not counted") {
			t.Errorf("the peak memory says it counts the broker: %q", r.Detail)
		}
		if strings.HasPrefix(r.Name, "sink drain") || strings.HasPrefix(r.Name, "end to end") {
			// The CPU a trade: what bounds throughput on a busy machine.
			var us float64
			if _, after, ok := strings.Cut(r.Detail, "; "); !ok {
				t.Errorf("%s: no CPU a trade in %q", r.Name, r.Detail)
			} else if _, err := fmt.Sscanf(after, "%f µs of this process's CPU a trade", &us); err != nil || us <= 0 {
				t.Errorf("%s: CPU a trade %q: %v", r.Name, after, err)
			}
		}
	}

	// Each run's lake holds each of its trades once.
	roots, _ := filepath.Glob(filepath.Join(dir, "k2-bench-ingest-*"))
	if len(roots) != 1 {
		t.Fatalf("scratch directories kept: %v", roots)
	}
	for run, n := range map[string]int{"drain": o.Trades, "pipeline": o.Trades, "fresh": int(float64(o.FreshRate) * o.FreshFor.Seconds())} {
		ids := tradeKeys(t, filepath.Join(roots[0], run))
		distinct := map[string]bool{}
		for _, id := range ids {
			distinct[id] = true
		}
		if len(ids) != n || len(distinct) != n {
			t.Errorf("%s run: %d trades committed, %d distinct, want %d", run, len(ids), len(distinct), n)
		}
	}

	// --keep left the topics; without it they go.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	kept.kafka, kept.adm = o.Kafka, kadm.NewClient(cl)
	runTopics := func() []string {
		topics, err := kept.adm.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, name := range topics.Names() {
			if strings.HasPrefix(name, kept.prefix) {
				out = append(out, name)
			}
		}
		return out
	}
	if got := runTopics(); len(got) == 0 {
		t.Fatalf("--keep: no topics under %s", kept.prefix)
	}
	if err := kept.dropTopics(ctx); err != nil {
		t.Fatal(err)
	}
	// Kafka deletes a topic in the background: the listing lags a little.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got := runTopics()
		if len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d topics left after the run's clean-up, e.g. %s", len(got), got[0])
		}
	}
}

// tradeKeys reads the key of every trade in the lake under dir: its
// symbol and trade_id.
func tradeKeys(t *testing.T, dir string) []string {
	t.Helper()
	ctx := context.Background()
	l, err := lake.Open(ctx, lake.Options{Tables: record.Tables(), Catalog: filepath.Join(dir, "catalog.db"), Warehouse: filepath.Join(dir, "warehouse")})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	tbl, err := l.Load(ctx, record.Trade.Table.Name)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := tbl.Scan().PlanFiles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range tasks {
		rdr, err := file.OpenParquetFile(lake.LocalPath(task.File.FilePath()), false)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tab, err := fr.ReadTable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		strs := func(name string) []string {
			var out []string
			for _, c := range tab.Column(tab.Schema().FieldIndices(name)[0]).Data().Chunks() {
				s := c.(*array.String)
				for i := range s.Len() {
					out = append(out, s.Value(i))
				}
			}
			return out
		}
		syms := strs("symbol")
		for i, id := range strs("trade_id") {
			ids = append(ids, syms[i]+"/"+id)
		}
		tab.Release()
		rdr.Close()
	}
	return ids
}
