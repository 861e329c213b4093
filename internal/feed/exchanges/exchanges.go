// Package exchanges is the table of the exchanges K2 speaks to. The
// commands read it: `k2 feed NAME` and `k2 up --feed NAME` for those with
// a live or synthetic feed, `k2 load FORMAT` for every file format, and
// `k2 demo PATH` recognises a file by the formats' Detect. A new exchange
// is a package under internal/feed and one line here.
package exchanges

import (
	"fmt"
	"strings"

	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/asx"
	"github.com/k2-market-data/k2/internal/feed/binance"
	"github.com/k2-market-data/k2/internal/feed/kraken"
	"github.com/k2-market-data/k2/internal/feed/synth"
)

// All lists the exchanges in the order commands show them.
var All = []*feed.Exchange{&binance.Exchange, &binance.USDM, &binance.COINM, &kraken.Exchange, &asx.Exchange, &synth.Exchange}

// Feeds lists the exchanges `k2 feed` can run.
func Feeds() []*feed.Exchange {
	var out []*feed.Exchange
	for _, e := range All {
		if e.Feeds() {
			out = append(out, e)
		}
	}
	return out
}

// Feed finds an exchange with a feed by name.
func Feed(name string) (*feed.Exchange, error) {
	var names []string
	for _, e := range Feeds() {
		if e.Name == strings.ToLower(strings.TrimSpace(name)) {
			return e, nil
		}
		names = append(names, e.Name)
	}
	return nil, fmt.Errorf("unknown feed %q: want %s", name, strings.Join(names, ", "))
}

// Formats lists every file format, in the order of All.
func Formats() []*feed.Format {
	var out []*feed.Format
	for _, e := range All {
		for i := range e.Formats {
			out = append(out, &e.Formats[i])
		}
	}
	return out
}

// Detect finds the format of a path, for loading it without being told.
func Detect(path string, dir bool) (*feed.Format, error) {
	var names []string
	for _, f := range Formats() {
		if f.Detect != nil && f.Detect(path, dir) {
			return f, nil
		}
		names = append(names, f.Name)
	}
	return nil, fmt.Errorf("%s is none of the formats K2 reads (%s); load it with k2 load FORMAT", path, strings.Join(names, ", "))
}
