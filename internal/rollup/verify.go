package rollup

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"slices"
	"strings"

	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/query"
	"github.com/k2-market-data/k2/internal/record"
)

// Verify compares every bar table with the bars of the trades snapshot it
// names, computed over each symbol's whole span in one query rather than
// partition by partition as a roll does. It returns the first difference.
func (r *Roller) Verify(ctx context.Context) error {
	for _, bt := range record.BarTables {
		got, tbl, err := r.engine.StoredBars(ctx, bt)
		if err != nil {
			return err
		}
		sortBars(got)
		snap, _ := query.MarkerOf(tbl)
		if snap == 0 && tbl.CurrentSnapshot() != nil {
			return fmt.Errorf("%s names no trades snapshot", bt.Table.FullName())
		}
		if snap == 0 { // never written: a roll found no bars to keep
			if snap, _, _, err = r.engine.TradesChanged(ctx, 0, 0); err != nil {
				return err
			}
			if snap == 0 {
				continue // no trades, no bars
			}
		}
		want, err := r.tradesBars(ctx, bt, snap)
		if err != nil {
			return err
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s holds %d bars; trades snapshot %d makes %d", bt.Table.FullName(), len(got), snap, len(want))
		}
		for i := range got {
			if !sameBar(got[i], want[i]) {
				return fmt.Errorf("%s holds %+v; trades snapshot %d makes %+v", bt.Table.FullName(), got[i], snap, want[i])
			}
		}
	}
	return nil
}

// tradesBars computes a table's bars from trades snapshot snap, for every
// symbol, within the table's retention.
func (r *Roller) tradesBars(ctx context.Context, bt record.BarTable, snap int64) ([]md.Bar, error) {
	_, changes, _, err := r.engine.TradesChanged(ctx, 0, snap)
	if err != nil {
		return nil, err
	}
	span := spanOf(bt)
	cutoff := md.TimestampOf(r.now().Add(-bt.Retention))
	from := md.Timestamp(span.start(span.of(cutoff)))
	symbols := map[string]bool{}
	for _, c := range changes {
		for _, s := range c.Symbols {
			symbols[s] = true
		}
	}
	var out []md.Bar
	for s := range symbols {
		aggs, err := r.engine.Aggregates(ctx, query.BarQuery{Filter: query.Filter{Symbol: s, From: from},
			Interval: bt.Interval, AsOf: query.AsOf{SnapshotID: snap}, TradesOnly: true})
		if err != nil {
			return nil, err
		}
		for _, a := range aggs {
			if !a.Partial && span.end(span.of(a.WindowStart)) > cutoff {
				out = append(out, a.Bar)
			}
		}
	}
	sortBars(out)
	return out, nil
}

func sortBars(bars []md.Bar) {
	slices.SortFunc(bars, func(a, b md.Bar) int {
		if a.Symbol != b.Symbol {
			return strings.Compare(a.Symbol, b.Symbol)
		}
		if a.WindowStart != b.WindowStart {
			return cmp.Compare(a.WindowStart, b.WindowStart)
		}
		return strings.Compare(a.Exchange, b.Exchange)
	})
}

func sameBar(x, y md.Bar) bool {
	return x.Symbol == y.Symbol && x.Exchange == y.Exchange && x.WindowStart == y.WindowStart && x.WindowEnd == y.WindowEnd &&
		x.Open == y.Open && x.High == y.High && x.Low == y.Low && x.Close == y.Close && x.TradeCount == y.TradeCount &&
		x.VWAP == y.VWAP && x.Partial == y.Partial && orZero(x.Volume.Units).Cmp(orZero(y.Volume.Units)) == 0
}

func orZero(v *big.Int) *big.Int {
	if v == nil {
		return new(big.Int)
	}
	return v
}
