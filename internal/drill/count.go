package drill

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/lake"
	"github.com/k2-market-data/k2/internal/record"
)

// Counts are a stream's records in the lake, by id.
type Counts struct {
	Produced   int64 // acknowledged by the broker
	InLake     int64 // distinct ids of the stream stored
	Lost       int64 // produced, not stored
	Duplicated int64 // extra copies stored
}

// Count reads the trades table and counts the stream's ids (symbol and
// trade id starting SYNTH-<run>-) against produced, the number the broker
// acknowledged, whose ids are the generator's first ones of each symbol.
func (in *Install) Count(ctx context.Context, t *Traffic, produced int64) (Counts, error) {
	c, _, err := in.countKeys(ctx, t, produced)
	return c, err
}

// countKeys is Count with the stream's stored keys (symbol/trade_id) and
// their copies.
func (in *Install) countKeys(ctx context.Context, t *Traffic, produced int64) (Counts, map[string]int, error) {
	l, err := in.lake(ctx)
	if err != nil {
		return Counts{}, nil, err
	}
	tbl, err := l.Load(ctx, record.Trade.Table.Name)
	if err != nil {
		return Counts{}, nil, err
	}
	keys, err := lake.CountKeys(ctx, tbl, "symbol", "trade_id")
	if err != nil {
		return Counts{}, nil, err
	}
	prefix := "SYNTH-" + t.Run + "-"
	c := Counts{Produced: produced}
	for k, n := range keys {
		_, id, _ := strings.Cut(k, "/")
		if !strings.HasPrefix(id, prefix) {
			delete(keys, k)
			continue
		}
		c.InLake++
		c.Duplicated += int64(n - 1)
	}
	// Every stored id was produced (the ids are the stream's own), so what
	// is missing is the difference.
	c.Lost = max(0, c.Produced-c.InLake)
	if c.InLake > c.Produced {
		return c, keys, fmt.Errorf("%d ids stored, only %d produced", c.InLake, c.Produced)
	}
	return c, keys, nil
}

// WaitStored waits until the lake holds the stream's produced records (or
// their number stops growing for stall), then counts them.
func (in *Install) WaitStored(ctx context.Context, t *Traffic, produced int64, stall time.Duration) (Counts, error) {
	c, _, err := in.waitKeys(ctx, t, produced, produced, stall)
	return c, err
}

// waitKeys waits until the lake holds want of the stream's ids (or their
// number stops growing for stall) and returns the counts against produced
// with the stream's stored keys. It counts the stream's own ids, not the
// table's rows, which hold earlier streams' too.
func (in *Install) waitKeys(ctx context.Context, t *Traffic, want, produced int64, stall time.Duration) (Counts, map[string]int, error) {
	last, since := int64(-1), time.Now()
	for {
		c, keys, err := in.countKeys(ctx, t, produced)
		if err == nil && c.InLake != last {
			last, since = c.InLake, time.Now()
		}
		if (err == nil && c.InLake >= want) || time.Since(since) > stall {
			return c, keys, err
		}
		select {
		case <-ctx.Done():
			return Counts{}, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fill copies the counts into a row.
func (r *Row) fill(c Counts) {
	r.Produced, r.InLake, r.Lost, r.Duplicated = c.Produced, c.InLake, c.Lost, c.Duplicated
}
