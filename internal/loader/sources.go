package loader

import (
	"context"
	"strings"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// Load reads path in the given format (an exchange's feed.Format) into
// the loader's output.
func (ld *Loader) Load(ctx context.Context, f *feed.Format, path string) error {
	ld.symbol = strings.ToUpper(strings.TrimSpace(ld.opts.Symbol))
	if ld.symbol == "" && f.Symbol != nil {
		ld.symbol = f.Symbol(path)
	}
	return f.Read(ctx, ld, path)
}

// The Loader is the formats' feed.Input.

// Lines implements feed.Input.
func (ld *Loader) Lines(ctx context.Context, path string, fn func(line []byte, n int64) error) error {
	return ld.eachLine(ctx, path, fn)
}

// Symbol implements feed.Input: --symbol, else what the format reads from
// the file name.
func (ld *Loader) Symbol() string { return ld.symbol }

// Assets implements feed.Input.
func (ld *Loader) Assets() *md.Assets { return ld.opts.Assets }

// Ingested implements feed.Input: one time for the whole load.
func (ld *Loader) Ingested() md.Timestamp { return ld.ingested }

// Emit implements feed.Input: a line that failed to parse goes to the
// dead-letter file, understood but unwanted ones are counted as skipped,
// and records go on to the lake or Kafka.
func (ld *Loader) Emit(ctx context.Context, file string, n int64, line []byte, ev feed.Events, err error) error {
	if bad := md.CheckUTF8("the line", line); bad != nil {
		err = bad // whatever the parser made of it
	}
	if err != nil {
		return ld.reject(file, n, md.ReasonOf(err), err, string(line))
	}
	if ev.Empty() {
		ld.skip(ev.Skipped)
		return nil
	}
	ld.read(ev.Len())
	for _, r := range ev.References {
		if err := add(ctx, ld, record.Reference, r); err != nil {
			return err
		}
	}
	for _, t := range ev.Trades {
		if err := add(ctx, ld, record.Trade, t); err != nil {
			return err
		}
	}
	for _, q := range ev.Quotes {
		if err := add(ctx, ld, record.Quote, q); err != nil {
			return err
		}
	}
	for _, f := range ev.Funding {
		if err := add(ctx, ld, record.Funding, f); err != nil {
			return err
		}
	}
	return nil
}
