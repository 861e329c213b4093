package loader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/asx"
	"github.com/k2-market-data/k2/internal/feed/binance"
	"github.com/k2-market-data/k2/internal/feed/kraken"
	md "github.com/k2-market-data/k2/internal/marketdata"
	"github.com/k2-market-data/k2/internal/record"
)

// ASX loads an ASX sample directory: reference-data/company_info.csv maps
// company ids to symbols, trades/<id>.csv and quotes/<id>.csv hold the
// ticks. Every file is checked against the reference data before anything
// is written, so an unknown company id stops the load with nothing stored.
func (ld *Loader) ASX(ctx context.Context, dir string) error {
	infoPath := filepath.Join(dir, "reference-data", "company_info.csv")
	f, err := os.Open(infoPath)
	if err != nil {
		return fmt.Errorf("ASX directory %s: %w", dir, err)
	}
	companies, err := asx.ReadCompanies(f, md.Now())
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", infoPath, err)
	}
	byID := map[string]md.ReferenceData{}
	for _, c := range companies {
		byID[c.CompanyID] = c
	}
	type job struct {
		path    string
		company md.ReferenceData
		quotes  bool
	}
	var jobs []job
	for _, kind := range []string{"trades", "quotes"} {
		paths, _ := filepath.Glob(filepath.Join(dir, kind, "*.csv"))
		sort.Strings(paths)
		for _, p := range paths {
			id := strings.TrimSuffix(filepath.Base(p), ".csv")
			c, ok := byID[id]
			if !ok {
				return fmt.Errorf("%s: company id %s is not in %s: unknown symbol", p, id, infoPath)
			}
			jobs = append(jobs, job{p, c, kind == "quotes"})
		}
	}
	if len(jobs) == 0 {
		return fmt.Errorf("ASX directory %s has no trades/*.csv or quotes/*.csv", dir)
	}
	ld.read(len(companies))
	for _, c := range companies {
		if err := add(ctx, ld, record.Reference, c); err != nil {
			return err
		}
	}
	ingested := md.Now()
	for _, j := range jobs {
		name := rel(dir, j.path)
		if j.quotes {
			err = loadLines(ctx, ld, j.path, name, asx.NewQuoteParser(j.company, ingested).Parse, record.Quote)
		} else {
			err = loadLines(ctx, ld, j.path, name, asx.NewTradeParser(j.company, ingested).Parse, record.Trade)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// BinanceCSV loads a Binance public-data trade file for one symbol.
func (ld *Loader) BinanceCSV(ctx context.Context, path, symbol string) error {
	symbol = strings.ToUpper(strings.TrimSpace(symbol))
	if symbol == "" {
		return fmt.Errorf("%s: --symbol is required: public-data files do not name their pair", path)
	}
	if _, _, err := ld.opts.Assets.Split(symbol); err != nil {
		return fmt.Errorf("unknown symbol %s: %v", symbol, err)
	}
	ingested := md.Now()
	parse := func(line string) (md.Trade, error) {
		return binance.ParseVisionLine(line, symbol, ld.opts.Assets, ingested)
	}
	return loadLines(ctx, ld, path, filepath.Base(path), parse, record.Trade)
}

// loadLines parses each line of path into one record for b; a line parse
// rejects goes to the dead-letter file.
func loadLines[T any](ctx context.Context, ld *Loader, path, name string, parse func(string) (T, error), k *record.Kind[T]) error {
	return ld.eachLine(ctx, path, func(line []byte, n int64) error {
		r, err := parse(string(line))
		if err != nil {
			return ld.reject(name, n, md.ReasonOf(err), err, string(line))
		}
		ld.read(1)
		return add(ctx, ld, k, r)
	})
}

// BinanceWS loads a Binance WebSocket capture ("<receive ns> <frame>" per
// line, gzip or plain): @trade frames become trades, @bookTicker quotes,
// other streams are counted and skipped.
func (ld *Loader) BinanceWS(ctx context.Context, path string) error {
	name := filepath.Base(path)
	return ld.eachLine(ctx, path, func(line []byte, n int64) error {
		ev, err := binance.ParseCaptureLine(line, ld.opts.Assets)
		return ld.events(ctx, name, n, line, ev, err)
	})
}

// KrakenWS loads Kraken WebSocket v2 messages, one JSON message a line:
// every trade of a batched message is stored.
func (ld *Loader) KrakenWS(ctx context.Context, path string) error {
	name := filepath.Base(path)
	ingested := md.Now()
	return ld.eachLine(ctx, path, func(line []byte, n int64) error {
		ev, err := kraken.ParseMessage(line, ingested, ld.opts.Assets)
		return ld.events(ctx, name, n, line, ev, err)
	})
}

func (ld *Loader) events(ctx context.Context, name string, n int64, line []byte, ev feed.Events, err error) error {
	if err != nil {
		return ld.reject(name, n, md.ReasonOf(err), err, string(line))
	}
	if ev.Empty() {
		ld.skip(ev.Skipped)
		return nil
	}
	ld.read(len(ev.Trades) + len(ev.Quotes))
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
	return nil
}

func rel(dir, path string) string {
	if r, err := filepath.Rel(filepath.Dir(dir), path); err == nil {
		return r
	}
	return path
}
