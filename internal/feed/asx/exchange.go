package asx

import (
	"bytes"
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
	info, err := os.ReadFile(infoPath)
	if err != nil {
		return fmt.Errorf("ASX directory %s: %w", dir, err)
	}
	// A company row that is not UTF-8 (R\xffO would become a symbol
	// "R\uFFFDO") is dead-lettered, and so is every line of its files:
	// they cannot be stored under a symbol, and the corrected file,
	// loaded again, brings them all.
	refused := map[string]error{} // company id → why its row was refused
	var clean bytes.Buffer
	for i, line := range bytes.SplitAfter(info, []byte("\n")) {
		bad := md.CheckUTF8("the row", line)
		if bad == nil {
			clean.Write(line)
			continue
		}
		clean.WriteByte('\n') // keeps the line numbers of the rows after it
		id, _, _ := bytes.Cut(line, []byte(","))
		refused[string(bytes.TrimSpace(id))] = fmt.Errorf("%s line %d: %w", companyFile, i+1, bad)
		if err := in.Emit(ctx, companyFile, int64(i+1), bytes.TrimRight(line, "\r\n"), feed.Events{}, bad); err != nil {
			return err
		}
	}
	companies, err := ReadCompanies(&clean, in.Ingested())
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
		refused error // the company's row was dead-lettered: so is every line
	}
	var jobs []job
	for _, kind := range []string{"trades", "quotes"} {
		paths, _ := filepath.Glob(filepath.Join(dir, kind, "*.csv"))
		sort.Strings(paths)
		for _, p := range paths {
			id := strings.TrimSuffix(filepath.Base(p), ".csv")
			c, ok := byID[id]
			if why := refused[id]; !ok && why != nil {
				jobs = append(jobs, job{path: p, refused: &md.ValidationError{Field: "symbol", Reason: fmt.Sprintf("company %s was refused (%v)", id, why)}})
				continue
			}
			if !ok {
				return fmt.Errorf("%s: company id %s is not in %s: unknown symbol", p, id, infoPath)
			}
			jobs = append(jobs, job{path: p, company: c, quotes: kind == "quotes"})
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
		switch {
		case j.refused != nil:
			err = in.Lines(ctx, j.path, func(line []byte, n int64) error {
				return in.Emit(ctx, name, n, line, feed.Events{}, j.refused)
			})
		case j.quotes:
			p := NewQuoteParser(j.company, in.Ingested())
			err = in.Lines(ctx, j.path, func(line []byte, n int64) error {
				q, err := p.Parse(string(line))
				return in.Emit(ctx, name, n, line, feed.Events{Quotes: []md.Quote{q}}, err)
			})
		default:
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
