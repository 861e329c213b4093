// Package live captures markets as they trade: it keeps a WebSocket to an
// exchange alive through everything a connection does in production
// (server pings, silent stalls, the exchange's connection time limit,
// endpoints that go away, reconnect storms) and turns its frames into
// records in Kafka, dropping the repeats a reconnect or a rotation
// produces and filling the holes it leaves from the exchange's REST API.
//
// A Session owns the connections; a Feed owns what the frames become. The
// exchanges differ only in a Protocol: how to address and subscribe, how to
// parse a frame, and how to keep the connection alive.
package live

import (
	"time"

	"github.com/k2-market-data/k2/internal/feed"
	md "github.com/k2-market-data/k2/internal/marketdata"
)

// Protocol is what one exchange's WebSocket API needs from a session.
type Protocol interface {
	// Exchange is the exchange code (BINANCE, KRAKEN).
	Exchange() string
	// URL is the address to dial at an endpoint (scheme, host and perhaps
	// a path, as configured).
	URL(endpoint string) (string, error)
	// Subscribe is what to send once connected.
	Subscribe() [][]byte
	// Parse turns one frame into records; control frames (subscription
	// answers, heartbeats) come back with Skipped set.
	Parse(frame []byte, received md.Timestamp) (feed.Events, error)
	// KeepAlive is an application-level ping to send every interval, for
	// protocols that want one (nil when WebSocket pings suffice).
	KeepAlive() (msg []byte, every time.Duration)
	// MaxLifetime is how long the exchange lets a connection live (0: no
	// limit); a session rotates before it.
	MaxLifetime() time.Duration
}

// Frame is one message as a connection received it.
type Frame struct {
	Data     []byte
	Received time.Time
	Conn     uint64 // which connection: two overlap during a rotation
	Endpoint string
}
