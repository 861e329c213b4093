package kraken

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Exchange is Kraken spot: a live v2 feed (trade → trades, ticker →
// quotes) and captured v2 messages. Gaps are counted, not backfilled: its
// REST trades are by time, not id.
var Exchange = feed.Exchange{
	Name:    "kraken",
	Code:    exchangeCode,
	Short:   "Kraken v2: trade → trades, ticker → quotes",
	Example: "k2 feed kraken --symbols BTC/USD,ETH/USD",
	Live: &feed.Live{
		Endpoints: []string{"wss://ws.kraken.com/v2"},
		Protocol: func(symbols []string, assets *md.Assets) (feed.Protocol, error) {
			return NewProtocol(symbols, assets)
		},
	},
	Formats: []feed.Format{{
		Name:  "kraken-ws",
		Arg:   "FILE",
		Short: "Kraken WebSocket v2 messages, one per line: every trade of each trade message",
		Detect: func(path string, dir bool) bool {
			return !dir && strings.HasSuffix(path, ".jsonl")
		},
		Read: func(ctx context.Context, in feed.Input, path string) error {
			name := filepath.Base(path)
			return in.Lines(ctx, path, func(line []byte, n int64) error {
				ev, err := ParseMessage(line, in.Ingested(), in.Assets())
				return in.Emit(ctx, name, n, line, ev, err)
			})
		},
	}},
}
