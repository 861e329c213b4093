package asx

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Exchange is the ASX: tick files of trades and quotes with their
// company list. It has no live feed.
var Exchange = feed.Exchange{
	Name: "asx",
	Code: exchangeCode,
	Formats: []feed.Format{{
		Name:  "asx",
		Arg:   "DIR",
		Short: "ASX tick files: DIR/trades/<company id>.csv, DIR/quotes/<id>.csv, DIR/reference-data/company_info.csv",
		Detect: func(path string, dir bool) bool {
			_, err := os.Stat(filepath.Join(path, companyFile))
			return dir && err == nil
		},
		Read: read,
	}},
}

const companyFile = "reference-data/company_info.csv"

// read loads an ASX sample directory: reference-data/company_info.csv maps
// company ids to symbols, trades/<id>.csv and quotes/<id>.csv hold the
// ticks. Every file is checked against the company list before anything
// is stored, so an unknown company id stops the load with nothing stored.
func read(ctx context.Context, in feed.Input, dir string) error {
	dir = filepath.Clean(dir) // "asx/" names its files asx/trades/…, as "asx" does
	infoPath := filepath.Join(dir, companyFile)
	f, err := os.Open(infoPath)
	if err != nil {
		return fmt.Errorf("ASX directory %s: %w", dir, err)
	}
	companies, err := ReadCompanies(f, in.Ingested())
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
	if err := in.Emit(ctx, companyFile, 0, nil, feed.Events{References: companies}, nil); err != nil {
		return err
	}
	for _, j := range jobs {
		name := j.path
		if r, err := filepath.Rel(filepath.Dir(dir), j.path); err == nil {
			name = r
		}
		if j.quotes {
			p := NewQuoteParser(j.company, in.Ingested())
			err = in.Lines(ctx, j.path, func(line []byte, n int64) error {
				q, err := p.Parse(string(line))
				return in.Emit(ctx, name, n, line, feed.Events{Quotes: []md.Quote{q}}, err)
			})
		} else {
			p := NewTradeParser(j.company, in.Ingested())
			err = in.Lines(ctx, j.path, func(line []byte, n int64) error {
				t, err := p.Parse(string(line))
				return in.Emit(ctx, name, n, line, feed.Events{Trades: []md.Trade{t}}, err)
			})
		}
		if err != nil {
			return err
		}
	}
	return nil
}
