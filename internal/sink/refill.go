package sink

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/apache/iceberg-go/table"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/k2-market-data/k2/internal/bus"
	"github.com/k2-market-data/k2/internal/codec"
	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
	"github.com/k2-market-data/k2/internal/registry"
)

// RefillConfig says where a dropped data file's records are read again.
type RefillConfig struct {
	Brokers     []string
	Security    bus.Security
	TopicPrefix string
	Registry    *registry.Client
	Lake        *lake.Lake
	Logger      *slog.Logger
}

// RefillResult is what Refill did.
type RefillResult struct {
	Table string `json:"table"`
	File  string `json:"file"`
	// Records the file held, by its manifest.
	Records int64 `json:"records"`
	// Read from Kafka, of them within the file's bounds, and stored again
	// (those the table lacked: the file's rows).
	Read    int64 `json:"read"`
	Matched int64 `json:"matched"`
	Stored  int64 `json:"stored"`
	// Gone are partitions whose oldest records Kafka no longer holds
	// (retention, the embedded broker's --broker-keep): rows of the file
	// may have been among them.
	Gone []string `json:"gone,omitempty"`
}

// Complete reports whether every row of the file was stored again.
func (r RefillResult) Complete() bool { return r.Stored == r.Records }

// refillBatchRows bounds one refill commit.
const refillBatchRows = 100_000

// Refill stores again the rows of a data file dropped from table
// (lake.DropDataFile): it reads, on every topic partition the table
// records offsets for, the records Kafka still holds up to those offsets
// (everything the table had consumed when the file was dropped), keeps
// those within the file's bounds of symbol and time, and commits them with
// the table's deduplication, which stores exactly the rows the table
// lacks: the file's. Its commits carry the table's offsets forward, so a
// sink running meanwhile is not disturbed.
func Refill(ctx context.Context, cfg RefillConfig, tableName string, f lake.DroppedFile) (RefillResult, error) {
	res := RefillResult{Table: tableName, File: f.Path, Records: f.Records}
	kind, err := record.ByTable(tableName)
	if err != nil {
		return res, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cl, err := bus.NewClient(cfg.Brokers, cfg.Security, kgo.ClientID("k2-refill"))
	if err != nil {
		return res, fmt.Errorf("kafka: %w", err)
	}
	topics := make([]string, 0, len(f.Offsets))
	for t := range f.Offsets {
		topics = append(topics, t)
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topics...)
	cl.Close()
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return res, fmt.Errorf("kafka %s: start offsets of %s: %w", strings.Join(cfg.Brokers, ","), strings.Join(topics, ", "), err)
	}
	// Each partition is read from its start to the table's offset.
	assign := map[string]map[int32]kgo.Offset{}
	remaining := map[string]map[int32]int64{}
	for t, ps := range f.Offsets {
		for p, end := range ps {
			start, _ := starts.Lookup(t, p)
			if start.Offset > 0 {
				res.Gone = append(res.Gone, fmt.Sprintf("%s[%d] before offset %d", t, p, start.Offset))
			}
			if start.Offset >= end {
				continue
			}
			if assign[t] == nil {
				assign[t], remaining[t] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			assign[t][p] = kgo.NewOffset().At(start.Offset)
			remaining[t][p] = end
		}
	}
	if len(assign) == 0 {
		return res, nil
	}
	cl, err = bus.NewClient(cfg.Brokers, cfg.Security, kgo.ClientID("k2-refill"), kgo.ConsumePartitions(assign))
	if err != nil {
		return res, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	b, err := kind.NewBatch(cfg.Lake, lake.WithDedup(true))
	if err != nil {
		return res, err
	}
	dec := codec.NewDecoder(cfg.Registry.SchemaByID)
	commit := func() error {
		if b.Len() == 0 {
			return nil
		}
		r, err := b.Commit(ctx, map[string]string{"k2.operation": "refill", "k2.source": "refill:" + f.Path},
			lake.WithSummary(func(base *table.Table) (map[string]string, error) { return lake.TableOffsets(base).Props(), nil }))
		if err != nil {
			return err
		}
		res.Stored += int64(r.Rows)
		b.Reset()
		return nil
	}
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("kafka %s[%d]: %w", t, p, err) })
		if ferr != nil {
			return res, ferr
		}
		for it := fetches.RecordIter(); !it.Done(); {
			rec := it.Next()
			end, ok := remaining[rec.Topic][rec.Partition]
			if !ok || rec.Offset >= end {
				continue
			}
			if rec.Offset+1 >= end {
				delete(remaining[rec.Topic], rec.Partition)
				if len(remaining[rec.Topic]) == 0 {
					delete(remaining, rec.Topic)
				}
				cl.PauseFetchPartitions(map[string][]int32{rec.Topic: {rec.Partition}})
			}
			res.Read++
			_, _, exchange, err := bus.ParseTopic(strings.TrimPrefix(rec.Topic, cfg.TopicPrefix))
			if err != nil {
				continue
			}
			m, err := b.AddMessage(ctx, dec, rec.Value, exchange)
			if err != nil {
				continue // the sink dead-lettered it: never in the table
			}
			if !f.Holds(m.Symbol, m.Time) {
				b.Undo()
				continue
			}
			res.Matched++
			if b.Len() >= refillBatchRows {
				if err := commit(); err != nil {
					return res, err
				}
			}
		}
	}
	if err := commit(); err != nil {
		return res, err
	}
	cfg.Logger.Info("dropped file's rows stored again", "table", tableName, "file", f.Path, "records", f.Records, "stored", res.Stored, "read", res.Read)
	return res, nil
}
