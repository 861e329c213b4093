package feed

import (
	"context"
	"fmt"
	"strings"
	"time"

	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Protocol is what one exchange's WebSocket API needs from a live session
// (internal/live): how to address and subscribe, how to parse a frame and
// how to keep the connection alive.
type Protocol interface {
	// Exchange is the exchange code (BINANCE, KRAKEN).
	Exchange() string
	// Symbols are the instruments subscribed to, as records name them
	// (BTCUSDT for Kraken's BTC/USDT).
	Symbols() []string
	// URL is the address to dial at an endpoint (scheme, host and perhaps
	// a path, as configured).
	URL(endpoint string) (string, error)
	// Subscribe is what to send once connected.
	Subscribe() [][]byte
	// Parse turns one frame into records; control frames (subscription
	// answers, heartbeats) come back with Skipped set.
	Parse(frame []byte, received md.Timestamp) (Events, error)
	// KeepAlive is an application-level ping to send every interval, for
	// protocols that want one (nil when WebSocket pings suffice).
	KeepAlive() (msg []byte, every time.Duration)
	// MaxLifetime is how long the exchange lets a connection live (0: no
	// limit); a session rotates before it.
	MaxLifetime() time.Duration
}

// Backfill fetches the trades of symbol with ids from..to (inclusive) that
// a feed missed, oldest first; it may return fewer (the exchange's page
// size) and is called again from the next id.
type Backfill func(ctx context.Context, symbol string, from, to int64) ([]md.Trade, error)

// ErrUnknownEvent marks a well-formed frame of a kind the feed did not
// subscribe to and does not know: it is dead-lettered, not dropped.
var ErrUnknownEvent error = &md.ReasonError{Text: "unknown event", Code: md.ReasonUnknownEvent}

// OnlyKnown turns a parse that skipped an event kind not in known into an
// ErrUnknownEvent.
func OnlyKnown(known map[string]bool, ev Events, err error) (Events, error) {
	if err == nil && ev.Skipped != "" && !known[ev.Skipped] {
		return ev, fmt.Errorf("%w %q", ErrUnknownEvent, ev.Skipped)
	}
	return ev, err
}

// CheckSymbols upper-cases symbols and checks that the asset list splits
// each into base and quote; a non-empty example asks for BASE/QUOTE pairs.
func CheckSymbols(exchange string, symbols []string, assets *md.Assets, example string) ([]string, error) {
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
