package kraken

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Protocol is the v2 WebSocket API: subscribe to trade (with the snapshot
// of recent trades, which also closes small gaps after a reconnect) and
// ticker; a heartbeat arrives every second.
type Protocol struct {
	symbols []string // Kraken spelling: BTC/USD
	assets  *md.Assets
	// PingEvery is the application ping interval (30 s).
	PingEvery time.Duration
}

// NewProtocol checks the pairs against the asset list.
func NewProtocol(symbols []string, assets *md.Assets) (*Protocol, error) {
	syms, err := feed.CheckSymbols("kraken", symbols, assets, "BTC/USD")
	if err != nil {
		return nil, err
	}
	return &Protocol{symbols: syms, assets: assets, PingEvery: 30 * time.Second}, nil
}

func (k *Protocol) Exchange() string { return exchangeCode }

func (k *Protocol) URL(endpoint string) (string, error) {
	if _, err := url.Parse(endpoint); err != nil {
		return "", fmt.Errorf("kraken endpoint %q: %w", endpoint, err)
	}
	return endpoint, nil
}

func (k *Protocol) Subscribe() [][]byte {
	msg := func(channel string, snapshot bool, id int) []byte {
		b, _ := json.Marshal(map[string]any{
			"method": "subscribe", "req_id": id,
			"params": map[string]any{"channel": channel, "symbol": k.symbols, "snapshot": snapshot},
		})
		return b
	}
	return [][]byte{msg("trade", true, 1), msg("ticker", false, 2)}
}

// known are the messages a Kraken feed understands and skips.
var known = map[string]bool{"control": true, "heartbeat": true, "status": true}

func (k *Protocol) Parse(frame []byte, received md.Timestamp) (feed.Events, error) {
	ev, err := ParseMessage(frame, received, k.assets)
	return feed.OnlyKnown(known, ev, err)
}

// KeepAlive pings at the application level too, as Kraken suggests for
// connections that may go quiet.
func (k *Protocol) KeepAlive() ([]byte, time.Duration) {
	return []byte(`{"method":"ping"}`), k.PingEvery
}

func (k *Protocol) MaxLifetime() time.Duration { return 0 }

// Symbols are the records' spelling of the pairs: BTC/USD becomes BTCUSD.
func (k *Protocol) Symbols() []string {
	out := make([]string, 0, len(k.symbols))
	for _, s := range k.symbols {
		if sym, _, err := k.assets.Symbol(s); err == nil {
			out = append(out, sym)
		}
	}
	return out
}
