package binance

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Exchange is Binance spot: a live feed of @trade (trades) and
// @bookTicker (quotes) with REST backfill, public-data trade files and
// WebSocket captures.
var Exchange = feed.Exchange{
	Name:    "binance",
	Code:    exchangeCode,
	Short:   "Binance spot: @trade → trades, @bookTicker → quotes",
	Example: "k2 feed binance --symbols BTCUSDT,ETHUSDT",
	Live: &feed.Live{
		Endpoints: []string{"wss://stream.binance.com:9443", "wss://stream.binance.com:443", "wss://data-stream.binance.vision"},
		Protocol: func(symbols []string, assets *md.Assets) (feed.Protocol, error) {
			return NewProtocol(symbols, assets)
		},
		REST:     "https://api.binance.com",
		Backfill: Backfill,
	},
	Formats: []feed.Format{{
		Name:  "binance-csv",
		Arg:   "FILE",
		Short: "Binance public-data trade file (data.binance.vision layout; ms or µs times); --symbol defaults to the file name's",
		Detect: func(path string, dir bool) bool {
			return !dir && strings.HasSuffix(path, ".csv")
		},
		// data.binance.vision names its files BTCUSDT-trades-2025-01-01.csv.
		Symbol: func(path string) string {
			if sym, rest, ok := strings.Cut(filepath.Base(path), "-"); ok && strings.HasPrefix(rest, "trades-") {
				return strings.ToUpper(sym)
			}
			return ""
		},
		Read: readVision,
	}, {
		Name:  "binance-ws",
		Arg:   "FILE",
		Short: "Binance WebSocket capture (spot, USD-M or COIN-M futures: the venue is told from each frame), '<receive ns> <frame>' per line, gzip or plain: @trade → trades, @bookTicker → quotes, @markPrice → funding_rates",
		Detect: func(path string, dir bool) bool {
			return !dir && (strings.HasSuffix(path, ".gz") || strings.HasSuffix(path, ".txt"))
		},
		Read: func(ctx context.Context, in feed.Input, path string) error {
			name := filepath.Base(path)
			return in.Lines(ctx, path, func(line []byte, n int64) error {
				ev, err := ParseCaptureLine(line, in.Assets())
				return in.Emit(ctx, name, n, line, ev, err)
			})
		},
	}},
}

// USDM and COINM are Binance's futures venues: the same protocol as spot
// on their own hosts, each venue a code of its own (BINANCE_USDM,
// BINANCE_COINM), so spot and futures of one pair never mix. Captures of
// either load with binance-ws, which tells the venue from each frame.
// There is no backfill: the futures REST trade history needs an API key.
var (
	USDM = feed.Exchange{
		Name:    "binance-usdm",
		Code:    usdmCode,
		Short:   "Binance USD-M futures: @trade → trades, @bookTicker → quotes, @markPrice@1s → funding_rates",
		Example: "k2 feed binance-usdm --symbols BTCUSDT,ETHUSDT",
		Live: &feed.Live{
			Endpoints: []string{"wss://fstream.binance.com"},
			Protocol:  futuresProtocol(usdmCode),
		},
	}
	COINM = feed.Exchange{
		Name:    "binance-coinm",
		Code:    coinmCode,
		Short:   "Binance COIN-M futures (quantities in contracts): @trade → trades, @bookTicker → quotes, @markPrice@1s → funding_rates",
		Example: "k2 feed binance-coinm --symbols BTCUSD_PERP",
		Live: &feed.Live{
			Endpoints: []string{"wss://dstream.binance.com"},
			Protocol:  futuresProtocol(coinmCode),
		},
	}
)

// readVision reads a public-data trade file of one symbol.
func readVision(ctx context.Context, in feed.Input, path string) error {
	symbol := in.Symbol()
	if symbol == "" {
		return fmt.Errorf("%s: --symbol is required: public-data files do not name their pair", path)
	}
	if _, _, err := in.Assets().Split(symbol); err != nil {
		return fmt.Errorf("unknown symbol %s: %v", symbol, err)
	}
	name := filepath.Base(path)
	return in.Lines(ctx, path, func(line []byte, n int64) error {
		// Newer public-data files start with a header line.
		if n == 1 && len(line) > 0 && (line[0] < '0' || line[0] > '9') && bytes.Contains(bytes.ToLower(line), []byte("price")) {
			return in.Emit(ctx, name, n, line, feed.Events{Skipped: "header"}, nil)
		}
		t, err := ParseVisionLine(string(line), symbol, in.Assets(), in.Ingested())
		if err != nil {
			return in.Emit(ctx, name, n, line, feed.Events{}, err)
		}
		return in.Emit(ctx, name, n, line, feed.Events{Trades: []md.Trade{t}}, nil)
	})
}
