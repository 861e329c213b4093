package feed

import (
	"context"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Exchange is everything K2 does with one venue: its live feed, if it
// has one, and the recorded-data formats the loader reads. Each exchange's
// package declares one; feed/exchanges lists them, and the commands build
// `k2 feed`, `k2 up --feed`, `k2 load` and `k2 demo` from that list.
type Exchange struct {
	Name    string // as commands spell it: binance
	Code    string // the exchange code records carry: BINANCE
	Short   string // one line for `k2 feed NAME --help`
	Example string // a `k2 feed` command line
	// Live connects to the exchange's WebSocket API (nil: no live feed).
	Live *Live
	// Synthetic feeds generate their market instead of connecting (synth).
	Synthetic bool
	// Formats are the recorded files `k2 load` reads.
	Formats []Format
}

// Feeds reports whether `k2 feed` can run the exchange.
func (e *Exchange) Feeds() bool { return e.Live != nil || e.Synthetic }

// Live is how to capture an exchange as it trades.
type Live struct {
	// Endpoints are the exchange's own WebSocket addresses, the first
	// preferred, the rest failovers.
	Endpoints []string
	// Protocol checks the symbols (in the exchange's spelling) and builds
	// the protocol that subscribes to them.
	Protocol func(symbols []string, assets *md.Assets) (Protocol, error)
	// Backfill, when set, recovers trades a reconnect missed from the
	// exchange's REST API at base (REST by default).
	REST     string
	Backfill func(base, apiKey string, assets *md.Assets) Backfill
}

// Format is a recorded-data format: `k2 load NAME PATH`.
type Format struct {
	Name  string // binance-ws
	Arg   string // what PATH is: FILE or DIR
	Short string
	// Detect reports whether a path looks like this format, so that
	// `k2 demo PATH` can load it without being told.
	Detect func(path string, dir bool) bool
	// Symbol, when set, is the format's instrument when the file does not
	// name it (Binance public-data files): --symbol, else what the file
	// name says.
	Symbol func(path string) string
	// Read reads path into in.
	Read func(ctx context.Context, in Input, path string) error
}

// Input is what a loader offers a Format: the lines of a file, and a place
// for what they yield.
type Input interface {
	// Lines calls fn with each line of a file (gzip or plain) and its
	// number, from 1, and shows progress; the slice is valid during the
	// call only.
	Lines(ctx context.Context, path string, fn func(line []byte, n int64) error) error
	// Emit stores what line n of file yielded. A parse error sends the line
	// to the dead-letter file with its reason; events that are Empty but
	// Skipped are counted as skipped.
	Emit(ctx context.Context, file string, n int64, line []byte, ev Events, err error) error
	// Symbol is the instrument of a file that does not name it ("": none
	// given).
	Symbol() string
	Assets() *md.Assets
	// Ingested is the load's ingestion time, stamped on every record.
	Ingested() md.Timestamp
}
