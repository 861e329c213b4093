// Package live captures markets as they trade: it keeps a WebSocket to an
// exchange alive through everything a connection does in production
// (server pings, silent stalls, the exchange's connection time limit,
// endpoints that go away, reconnect storms) and turns its frames into
// records in Kafka, dropping the repeats a reconnect or a rotation
// produces and filling the holes it leaves from the exchange's REST API.
//
// A Session owns the connections; a Feed owns what the frames become. The
// exchanges differ only in a feed.Protocol, which each exchange's package
// declares: how to address and subscribe, how to parse a frame, and how to
// keep the connection alive.
package live

import (
	"time"
)

// Frame is one message as a connection received it.
type Frame struct {
	Data     []byte
	Received time.Time
	Conn     uint64 // which connection: two overlap during a rotation
	Endpoint string
}

// StopFlush is how long a stopping feed waits for the broker to acknowledge
// what it produced: a stop stays prompt when the broker is gone, and the
// producer's Close says what was left undelivered.
const StopFlush = 5 * time.Second
