package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/feed"
	"github.com/k2-market-data/k2/internal/feed/binance"
	"github.com/k2-market-data/k2/internal/feed/kraken"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// errUnknownEvent marks a well-formed frame of a kind the feed did not
// subscribe to and does not know.
var errUnknownEvent = errors.New("unknown event")

// Default endpoints: the exchange's own, then its alternatives.
var (
	BinanceEndpoints = []string{"wss://stream.binance.com:9443", "wss://stream.binance.com:443", "wss://data-stream.binance.vision"}
	BinanceREST      = "https://api.binance.com"
	KrakenEndpoints  = []string{"wss://ws.kraken.com/v2"}
)

// Binance is the spot WebSocket API: combined @trade and @bookTicker
// streams named in the URL, server pings every 20 s, connections that
// live at most 24 h.
type Binance struct {
	symbols []string // exchange spelling: BTCUSDT
	assets  *md.Assets
}

// NewBinance checks the symbols against the asset list.
func NewBinance(symbols []string, assets *md.Assets) (*Binance, error) {
	syms, err := checkSymbols("binance", symbols, assets, "")
	if err != nil {
		return nil, err
	}
	return &Binance{symbols: syms, assets: assets}, nil
}

// checkSymbols upper-cases symbols and checks that the asset list splits
// each into base and quote; a non-empty example asks for BASE/QUOTE pairs.
func checkSymbols(exchange string, symbols []string, assets *md.Assets, example string) ([]string, error) {
	if len(symbols) == 0 {
		return nil, fmt.Errorf("%s: no symbols", exchange)
	}
	var out []string
	for _, s := range symbols {
		s = strings.ToUpper(strings.TrimSpace(s))
		if example != "" && !strings.Contains(s, "/") {
			return nil, fmt.Errorf("%s symbol %q: write pairs as BASE/QUOTE, e.g. %s", exchange, s, example)
		}
		if _, _, err := assets.Symbol(s); err != nil {
			return nil, fmt.Errorf("%s symbol %q: %w", exchange, s, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func (b *Binance) Exchange() string { return "BINANCE" }

// URL names every stream in the path: /stream?streams=btcusdt@trade/btcusdt@bookTicker.
func (b *Binance) URL(endpoint string) (string, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return "", fmt.Errorf("binance endpoint %q: %w", endpoint, err)
	}
	var streams []string
	for _, s := range b.symbols {
		l := strings.ToLower(s)
		streams = append(streams, l+"@trade", l+"@bookTicker")
	}
	u.Path += "/stream"
	u.RawQuery = "streams=" + strings.Join(streams, "/")
	return u.String(), nil
}

func (b *Binance) Subscribe() [][]byte { return nil }

// binanceKnown are the events and answers a Binance feed understands and
// skips.
var binanceKnown = map[string]bool{"control": true, "aggTrade": true, "depthUpdate": true}

func (b *Binance) Parse(frame []byte, received md.Timestamp) (feed.Events, error) {
	return onlyKnown(binanceKnown)(binance.ParseFrame(frame, received, b.assets))
}

// onlyKnown turns a parse that skipped an event kind not in known into an
// unknown-event error: the frame is dead-lettered, not silently dropped.
func onlyKnown(known map[string]bool) func(feed.Events, error) (feed.Events, error) {
	return func(ev feed.Events, err error) (feed.Events, error) {
		if err == nil && ev.Skipped != "" && !known[ev.Skipped] {
			return ev, fmt.Errorf("%w %q", errUnknownEvent, ev.Skipped)
		}
		return ev, err
	}
}

func (b *Binance) KeepAlive() ([]byte, time.Duration) { return nil, 0 }

func (b *Binance) MaxLifetime() time.Duration { return 24 * time.Hour }

// BinanceBackfill reads missed trades from GET /api/v3/historicalTrades at
// base (an API key, if given, goes in X-MBX-APIKEY as Binance requires).
func BinanceBackfill(base, apiKey string, assets *md.Assets, client *http.Client) Backfill {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	base = strings.TrimRight(base, "/")
	return func(ctx context.Context, symbol string, from, to int64) ([]md.Trade, error) {
		limit := min(to-from+1, 1000)
		q := url.Values{"symbol": {symbol}, "fromId": {strconv.FormatInt(from, 10)}, "limit": {strconv.FormatInt(limit, 10)}}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v3/historicalTrades?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		if apiKey != "" {
			req.Header.Set("X-MBX-APIKEY", apiKey)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("binance historical trades: %w", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("binance historical trades: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("binance historical trades %s: HTTP %d: %.200s", req.URL.Redacted(), resp.StatusCode, body)
		}
		return binance.ParseHistoricalTrades(body, symbol, assets, md.Now())
	}
}

// Kraken is the v2 WebSocket API: subscribe to trade (with the snapshot
// of recent trades, which also closes small gaps after a reconnect) and
// ticker; a heartbeat arrives every second.
type Kraken struct {
	symbols []string // Kraken spelling: BTC/USD
	assets  *md.Assets
	ping    time.Duration // application ping interval
}

// NewKraken checks the pairs against the asset list.
func NewKraken(symbols []string, assets *md.Assets) (*Kraken, error) {
	syms, err := checkSymbols("kraken", symbols, assets, "BTC/USD")
	if err != nil {
		return nil, err
	}
	return &Kraken{symbols: syms, assets: assets, ping: 30 * time.Second}, nil
}

func (k *Kraken) Exchange() string { return "KRAKEN" }

func (k *Kraken) URL(endpoint string) (string, error) {
	if _, err := url.Parse(endpoint); err != nil {
		return "", fmt.Errorf("kraken endpoint %q: %w", endpoint, err)
	}
	return endpoint, nil
}

func (k *Kraken) Subscribe() [][]byte {
	msg := func(channel string, snapshot bool, id int) []byte {
		b, _ := json.Marshal(map[string]any{
			"method": "subscribe", "req_id": id,
			"params": map[string]any{"channel": channel, "symbol": k.symbols, "snapshot": snapshot},
		})
		return b
	}
	return [][]byte{msg("trade", true, 1), msg("ticker", false, 2)}
}

// krakenKnown are the messages a Kraken feed understands and skips.
var krakenKnown = map[string]bool{"control": true, "heartbeat": true, "status": true}

func (k *Kraken) Parse(frame []byte, received md.Timestamp) (feed.Events, error) {
	return onlyKnown(krakenKnown)(kraken.ParseMessage(frame, received, k.assets))
}

// KeepAlive pings at the application level too, as Kraken suggests for
// connections that may go quiet.
func (k *Kraken) KeepAlive() ([]byte, time.Duration) {
	return []byte(`{"method":"ping"}`), k.ping
}

func (k *Kraken) MaxLifetime() time.Duration { return 0 }
