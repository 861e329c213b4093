package binance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Protocol is Binance's WebSocket API, spot's or a futures venue's (the
// same protocol on other hosts): combined streams named in the URL, server
// pings every 20 s, connections that live at most 24 h.
type Protocol struct {
	code    string   // the venue: BINANCE, BINANCE_USDM or BINANCE_COINM
	streams []string // per symbol: @trade and @bookTicker, and @markPrice@1s on futures
	symbols []string // exchange spelling: BTCUSDT, BTCUSD_PERP
	assets  *md.Assets
}

// NewProtocol is spot's: it checks the symbols against the asset list.
func NewProtocol(symbols []string, assets *md.Assets) (*Protocol, error) {
	syms, err := feed.CheckSymbols("binance", symbols, assets, "")
	if err != nil {
		return nil, err
	}
	return &Protocol{code: exchangeCode, streams: []string{"@trade", "@bookTicker"}, symbols: syms, assets: assets}, nil
}

// futuresProtocol is a futures venue's: trades, the book's top and the
// mark price and funding rate each second. A contract's symbol is its
// pair and, but for USD-M perpetuals, a contract (BTCUSD_PERP).
func futuresProtocol(code string) func(symbols []string, assets *md.Assets) (feed.Protocol, error) {
	return func(symbols []string, assets *md.Assets) (feed.Protocol, error) {
		syms := make([]string, len(symbols))
		for i, s := range symbols {
			s = strings.ToUpper(strings.TrimSpace(s))
			if _, _, err := instrument(assets, code, s, map[string]string{}); err != nil {
				return nil, fmt.Errorf("%s: %w", strings.ToLower(code), err)
			}
			if c := futuresCode(s, ""); c != code {
				return nil, fmt.Errorf("%s is a contract of %s, not of %s", s, c, code)
			}
			syms[i] = s
		}
		return &Protocol{code: code, streams: []string{"@trade", "@bookTicker", "@markPrice@1s"}, symbols: syms, assets: assets}, nil
	}
}

func (b *Protocol) Exchange() string { return b.code }

// URL names every stream in the path: /stream?streams=btcusdt@trade/btcusdt@bookTicker.
func (b *Protocol) URL(endpoint string) (string, error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/"))
	if err != nil {
		return "", fmt.Errorf("binance endpoint %q: %w", endpoint, err)
	}
	var streams []string
	for _, s := range b.symbols {
		for _, st := range b.streams {
			streams = append(streams, strings.ToLower(s)+st)
		}
	}
	u.Path += "/stream"
	u.RawQuery = "streams=" + strings.Join(streams, "/")
	return u.String(), nil
}

func (b *Protocol) Subscribe() [][]byte { return nil }

// known are the events and answers a Binance feed understands and skips.
var known = map[string]bool{"control": true, "aggTrade": true, "depthUpdate": true}

func (b *Protocol) Parse(frame []byte, received md.Timestamp) (feed.Events, error) {
	ev, err := ParseFrame(frame, received, b.assets)
	return feed.OnlyKnown(known, ev, err)
}

func (b *Protocol) KeepAlive() ([]byte, time.Duration) { return nil, 0 }

func (b *Protocol) MaxLifetime() time.Duration { return 24 * time.Hour }

// Backfill reads missed trades from GET /api/v3/historicalTrades at base
// (an API key, if given, goes in X-MBX-APIKEY as Binance requires).
func Backfill(base, apiKey string, assets *md.Assets) feed.Backfill {
	client := &http.Client{Timeout: 10 * time.Second}
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
		return ParseHistoricalTrades(body, symbol, assets, md.Now())
	}
}

// Symbols are Binance's own spelling, which records keep.
func (b *Protocol) Symbols() []string { return b.symbols }
