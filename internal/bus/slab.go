package bus

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// slab hands out the producer's records and their message bytes from
// shared blocks rather than two allocations a record. The client copies
// each message into its request from memory that lies in order, and the
// collector sees a few large objects instead of millions of small ones. A
// block lives until the last of its records is acknowledged.
type slab struct {
	mu   sync.Mutex
	buf  []byte
	recs []kgo.Record
}

const (
	slabBytes   = 256 << 10
	slabRecords = 1024
	// slabMessage is the room a message is encoded into; a longer one is
	// allocated on its own.
	slabMessage = 1 << 10
)

// record returns a record whose Key and Value are the message that encode
// appends to the buffer it is given, followed by key.
func (s *slab) record(key string, encode func([]byte) ([]byte, error)) (*kgo.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cap(s.buf)-len(s.buf) < slabMessage+len(key) {
		s.buf = make([]byte, 0, max(slabBytes, slabMessage+len(key)))
	}
	free := s.buf[len(s.buf):len(s.buf):cap(s.buf)]
	msg, err := encode(free)
	if err != nil {
		return nil, err
	}
	msg = append(msg, key...)
	if len(msg) <= cap(free) {
		// Encoded in place (append moves what outgrows it): the block
		// holds it now.
		s.buf = s.buf[:len(s.buf)+len(msg)]
	}
	if len(s.recs) == cap(s.recs) {
		s.recs = make([]kgo.Record, 0, slabRecords)
	}
	s.recs = s.recs[:len(s.recs)+1]
	r := &s.recs[len(s.recs)-1]
	n := len(msg) - len(key)
	r.Value, r.Key = msg[:n:n], msg[n:len(msg):len(msg)]
	return r, nil
}
