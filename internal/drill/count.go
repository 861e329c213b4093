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
	l, err := in.lake(ctx)
	if err != nil {
		return Counts{}, err
	}
	tbl, err := l.Load(ctx, record.Trade.Table.Name)
	if err != nil {
		return Counts{}, err
	}
	keys, err := lake.CountKeys(ctx, tbl, "symbol", "trade_id")
	if err != nil {
		return Counts{}, err
	}
	prefix := "SYNTH-" + t.Run + "-"
	c := Counts{Produced: produced}
	for k, n := range keys {
		_, id, _ := strings.Cut(k, "/")
		if !strings.HasPrefix(id, prefix) {
			continue
		}
		c.InLake++
		c.Duplicated += int64(n - 1)
	}
	// Every stored id was produced (the ids are the stream's own), so what
	// is missing is the difference.
	c.Lost = max(0, c.Produced-c.InLake)
	if c.InLake > c.Produced {
		return c, fmt.Errorf("%d ids stored, only %d produced", c.InLake, c.Produced)
	}
	return c, nil
}

// WaitStored waits until the lake holds the stream's produced records (or
// stops growing for stall), then counts them.
func (in *Install) WaitStored(ctx context.Context, t *Traffic, produced int64, stall time.Duration) (Counts, error) {
	last, since := int64(-1), time.Now()
	for {
		n, err := in.StoredRows(ctx)
		if err == nil && n != last {
			last, since = n, time.Now()
		}
		if err == nil && n >= produced {
			c, err := in.Count(ctx, t, produced)
			if err != nil || c.InLake == produced {
				return c, err
			}
		}
		if time.Since(since) > stall {
			return in.Count(ctx, t, produced)
		}
		select {
		case <-ctx.Done():
			return Counts{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// fill copies the counts into a row.
func (r *Row) fill(c Counts) {
	r.Produced, r.InLake, r.Lost, r.Duplicated = c.Produced, c.InLake, c.Lost, c.Duplicated
}
